"""Port checks before the local stack starts: a listener blocks a port, a lingering connection does not."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from pydantic import SecretStr

from coinstream.aws import child_env
from coinstream.config import Settings, load_settings
from coinstream.errors import FatalError
from coinstream.processes import ensure_port_free


def _port_with_time_wait() -> int:
    """A loopback port whose server side closed first: its socket lingers in TIME_WAIT, nothing listens."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = int(listener.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first, as a killed server does: TIME_WAIT on the server's port
    client.recv(1)
    client.close()
    listener.close()
    return port


@pytest.mark.parametrize("host", ["", "127.0.0.1"])
def test_a_port_left_in_time_wait_counts_as_free(host: str) -> None:
    port = _port_with_time_wait()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain:  # the old check: a bind without SO_REUSEADDR
        with pytest.raises(OSError):
            plain.bind((host, port))
    ensure_port_free(port, "kinesis-mock", "COINSTREAM_KINESIS_PORT", host)


@pytest.mark.parametrize("host", ["", "127.0.0.1"])
def test_a_listening_port_is_refused_with_the_setting_that_moves_it(host: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with pytest.raises(
            FatalError, match=rf"port {port} \(kinesis-mock\) is already in use.*COINSTREAM_KINESIS_PORT"
        ):
            ensure_port_free(port, "kinesis-mock", "COINSTREAM_KINESIS_PORT", host)


def test_child_processes_get_every_setting_as_it_is_and_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        kcl_fast_start=False,
        candle_reread_minutes=0,
        x_sample_size=0,
        x_dollars_per_day=0.0,
        x_bearer_token=SecretStr("never-in-a-child-env"),
    )
    env = child_env(settings)
    assert "never-in-a-child-env" not in env.values() and "COINSTREAM_X_BEARER_TOKEN" not in env
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = load_settings()  # a record processor reads its settings this way
    assert child.model_dump(exclude={"x_bearer_token"}) == settings.model_dump(exclude={"x_bearer_token"})


def test_local_down_stops_the_workers_and_dashboards_that_use_the_stack(tmp_path: Path) -> None:
    """`coinstream local down` said "no process left" while a `consume` worker (KCL and its processors) and a
    dashboard kept running (issue 39): every process registered under run/ is stopped, the stack's users first."""
    import subprocess

    from coinstream.processes import Managed
    from operate import local_stack

    settings = Settings(state_dir=tmp_path)
    worker = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a KCL daemon leads its own group
    command = subprocess.Popen(["sleep", "60"])  # a foreground `consume` or `dashboard` in the caller's group
    Managed(f"kcl-warehouse-{worker.pid}", tmp_path).register(worker.pid)
    Managed("dashboard-8050", tmp_path).register(command.pid)
    stopped = local_stack.down(settings)
    assert stopped == ["dashboard-8050", f"kcl-warehouse-{worker.pid}"]
    worker.wait(timeout=10), command.wait(timeout=10)  # both gone (stop reaps a child of its own, so no code here)
    assert list((tmp_path / "run").glob("*.pid")) == []


def test_free_ports_are_below_the_ephemeral_range() -> None:
    """A port the kernel handed out (bind to 0) can become an outgoing connection's source port before the server
    meant for it binds it: CI saw "moto server exited while starting: Port 54081 is in use". Ports come from below
    the ephemeral range, where no outgoing connection takes one."""
    from coinstream.processes import _ephemeral_low, free_port

    low = _ephemeral_low()
    assert all(1024 <= free_port() < low for _ in range(20))
