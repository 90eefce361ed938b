"""Background processes the project starts itself: pid files, logs, clean stops, free ports."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from coinstream.errors import FatalError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Managed:
    """A named background process whose pid and log live under the state folder."""

    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid if the process is alive, else None (and a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return None
        except PermissionError:
            return pid
        if _is_zombie(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> int:
        """Start in its own session (so a stop reaches its children), logging to its log file."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def register(self, pid: int) -> None:
        """Record a process this one did not start here (a foreground command's own), so a stop reaches it."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(pid))

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM the process group, SIGKILL what is left after `timeout`; True if something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        stop_group(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def stop_group(pid: int, timeout: float = 10.0) -> None:
    """Stop a process and every process in its group (the process alone where it leads no group, as a command run
    in someone else's group does): TERM, wait, then KILL."""
    try:
        leads = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    send = os.killpg if leads else os.kill
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            send(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
        while time.monotonic() < deadline:
            try:
                send(pid, 0)
            except ProcessLookupError:
                return
            if _is_zombie(pid) and not leads:
                return
            try:  # reap it if it is our child, so it does not linger as a zombie
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)


def ensure_port_free(port: int, what: str, setting: str, host: str = "") -> None:
    """Fail with one clear line when something listens on `port`, naming the setting that moves it.

    SO_REUSEADDR makes the probe ask what the servers we start ask (node and werkzeug set it too):
    is there a listener? A connection of a stopped server lingering in TIME_WAIT is no obstacle to them,
    so it must not be to this check either (without the flag, `local down` then `up` failed for a minute).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise FatalError(
                f"port {port} ({what}) is already in use; stop whatever holds it "
                f"(`coinstream local down` if it is ours) or set {setting} to a free port"
            ) from None


def free_port() -> int:
    """A currently free TCP port on loopback (for tests and parallel stacks), below the kernel's ephemeral range:
    a port the kernel handed out (bind to port 0) can be taken as the source port of any outgoing connection
    before the server that was meant to listen there binds it ("Port … is in use")."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded machine: any free one
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux; 32768 elsewhere, its default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
