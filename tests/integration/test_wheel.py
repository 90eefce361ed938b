"""An EC2 host with pip alone: the wheel installs outside any checkout, runs a producer and renders the stack."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from coinstream import REPO_ROOT
from coinstream.aws import client
from coinstream.config import Pipeline
from consumer.checkpoints import stream_record_count
from operate import artifacts
from tests.conftest import payload
from tests.http_server import Reply, api_server
from tests.stack import running_stack


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, (
        f"{argv[:3]} exited {result.returncode}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment, outside the checkout, with the wheel and its core dependencies only.

    Built once per test run: the workers of a parallel run (`make test`) share it, the first one builds it."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's folder, above each worker's
    where = shared / "ec2-host"
    with (shared / "ec2-host.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (where / "built").exists():
            shutil.rmtree(where, ignore_errors=True)  # what a failed build left
            where.mkdir()
            # exactly what `deploy --apply` uploads and a producer host's bootstrap installs: the core lock, then
            # the wheel without resolving anything else
            dist = where / "dist"
            artifacts.build(Pipeline.load(REPO_ROOT / "pipeline.toml"), dist)
            wheel = next(dist.glob("coinstream-*.whl"))
            venv.create(where / "venv", with_pip=True)
            # uv installs what the host's pip would (the same lock, then the wheel alone) from this machine's
            # cache: pip downloading and compiling it all took 146 s of a CI run
            pip = [
                sys.executable,
                "-m",
                "uv",
                "pip",
                "install",
                "--quiet",
                "--python",
                str(where / "venv" / "bin" / "python"),
            ]
            _run([*pip, "-r", str(dist / "requirements-core.txt")], where)
            _run([*pip, "--no-deps", str(wheel)], where)
            (where / "built").touch()
    return where


def _host_env(where: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("COINSTREAM_", "VIRTUAL_ENV", "PYTHON"))}
    return {**keep, "HOME": str(where), "PATH": f"{where / 'venv' / 'bin'}:{keep.get('PATH', '')}", **extra}


@pytest.mark.takes(35)  # builds the wheel the other tests here share: early, not in a parallel run's tail
def test_the_core_install_has_no_java_node_moto_or_statistics(installed: Path) -> None:
    python = str(installed / "venv" / "bin" / "python")
    missing = _run(
        [
            python,
            "-c",
            "import importlib.util as u; print([m for m in ('amazon_kclpy', 'moto', 'duckdb', 'scipy', "
            "'statsmodels') if u.find_spec(m)])",
        ],
        installed,
        _host_env(installed),
    )
    assert missing.strip() == "[]"
    assert "Does chatter about bitcoin" in _run(["coinstream", "--help"], installed, _host_env(installed))
    # the lock pinned every distribution the wheel needs: pip finds nothing missing or broken
    assert "No broken requirements" in _run([python, "-m", "pip", "check"], installed, _host_env(installed))


def test_deploy_render_uses_the_packaged_declarations(installed: Path) -> None:
    out = installed / "cloudformation.json"
    _run(["coinstream", "deploy", "--render", str(out)], installed, _host_env(installed))
    assert json.loads(out.read_text()) == json.loads((REPO_ROOT / "deploy" / "cloudformation.json").read_text())


def test_a_producer_run_from_the_wheel_reaches_the_stream(installed: Path, tmp_path: Path) -> None:
    with running_stack(tmp_path / "state") as (settings, pipeline, env), api_server() as api:
        api.on("/public/v2/chart/KRW/BTC", Reply(payload("coinone/chart_KRW_BTC_1m.json")))
        host = _host_env(
            installed,
            COINSTREAM_KINESIS_PORT=env["COINSTREAM_KINESIS_PORT"],
            COINSTREAM_MOTO_PORT=env["COINSTREAM_MOTO_PORT"],
            COINSTREAM_COINONE_URL=api.url,
        )
        said = _run(["coinstream", "produce", "candles", "--source", "coinone"], installed, host)
        assert "30 fetched, 30 sent to coinstream-raw" in said
        assert sum(stream_record_count(client("kinesis", settings), pipeline.stream_name).values()) == 30
        # the wheel keeps its state in the user's state folder, never in site-packages
        assert (
            installed / ".local" / "state" / "coinstream" / "producer" / "candle-coinone-KRW-BTC.state.json"
        ).is_file()


def test_the_wheel_carries_the_dashboards_chart_library(installed: Path) -> None:
    wheel = next((installed / "dist").glob("coinstream-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {
            "warehouse/dashboard/static/vendor/echarts.min.js",
            "warehouse/dashboard/static/vendor/echarts.LICENSE",
        } <= names
        shipped = archive.read("warehouse/dashboard/static/vendor/echarts.min.js")
    assert shipped == (REPO_ROOT / "node_modules" / "echarts" / "dist" / "echarts.min.js").read_bytes()  # npm's file


def test_local_up_resources_only_runs_from_the_core_install(installed: Path, tmp_path: Path) -> None:
    """compose's `resources` service runs this in the producer image, which has neither the consumer extra (KCL)
    nor the warehouse's DuckDB."""
    with running_stack(tmp_path / "state") as (settings, _, env):
        firehose = client("firehose", settings)
        names = firehose.list_delivery_streams()["DeliveryStreamNames"]
        firehose.delete_delivery_stream(DeliveryStreamName=names[0])
        host = _host_env(
            installed,
            COINSTREAM_KINESIS_PORT=env["COINSTREAM_KINESIS_PORT"],
            COINSTREAM_MOTO_PORT=env["COINSTREAM_MOTO_PORT"],
        )
        assert "resources created on" in _run(["coinstream", "local", "up", "--resources-only"], installed, host)
        assert firehose.list_delivery_streams()["DeliveryStreamNames"] == names


def _refused(installed: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A `coinstream` command from the core install that must end 1."""
    done = subprocess.run(
        ["coinstream", *argv], cwd=installed, env=_host_env(installed), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr[-2000:]
    return done


def test_consume_from_the_core_install_names_the_missing_extra(installed: Path) -> None:
    done = _refused(installed, "consume", "--until-caught-up")
    assert done.stderr.strip().splitlines() == [
        "error: this command needs amazon-kclpy, which this install lacks: pip install 'coinstream[consumer]'"
    ]


def test_run_from_the_core_install_shows_its_plan_and_names_the_extra_it_needs(installed: Path) -> None:
    """`coinstream run --dry-run` needs nothing but the core; the run itself names the extra to add, in one line."""
    plan = _run(["coinstream", "run", "--dry-run", "--source", "upbit"], installed, _host_env(installed))
    assert "produce upbit" in plan and "consume warehouse" in plan and "X bill" in plan
    done = _refused(installed, "run", "--source", "upbit")
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'coinstream[local]'" in lines[0], done.stderr
