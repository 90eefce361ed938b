"""The local stand-in for AWS: kinesis-mock for Kinesis, moto server for DynamoDB, S3 and Firehose.

`up` starts both on loopback, then creates the resources pipeline.toml declares; `down` stops
them and leaves no process behind; `status` says what runs and what each resource holds.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coinstream import REPO_ROOT, live_table
from coinstream.aws import child_env, classify, client
from coinstream.config import Pipeline, Settings
from coinstream.delivery import delivered_rows, load_delivery_streams, local_definition
from coinstream.errors import CoinstreamError, FatalError
from coinstream.live_table import read_minutes
from coinstream.processes import Managed, ensure_port_free

logger = logging.getLogger(__name__)

#: The npm package that serves Kinesis locally (the version package.json pins).
KINESIS_MOCK_PACKAGE = "kinesis-local@0.6.2"


def kinesis_mock_dir(settings: Settings) -> Path:
    """Where kinesis-mock is installed: COINSTREAM_KINESIS_MOCK_DIR, else the checkout's node_modules (`make
    setup`), else ./node_modules (an installed wheel: `npm install kinesis-local` where you run it); FatalError
    naming both fixes when none holds it."""
    candidates = (
        [settings.kinesis_mock_dir]
        if settings.kinesis_mock_dir
        else [REPO_ROOT / "node_modules" / "kinesis-local", Path.cwd() / "node_modules" / "kinesis-local"]
    )
    for folder in candidates:
        if (folder / "main.js").is_file():
            return folder
    raise FatalError(
        f"kinesis-mock is not installed in {' or '.join(str(c) for c in candidates)}: in a checkout run `make setup`; "
        f"from an installed wheel run `npm install {KINESIS_MOCK_PACKAGE}` in a folder and set "
        "COINSTREAM_KINESIS_MOCK_DIR to its node_modules/kinesis-local"
    )


MIN_NODE_MAJOR = 18


def kinesis_proc(settings: Settings) -> Managed:
    return Managed("kinesis-mock", settings.state_dir)


def moto_proc(settings: Settings) -> Managed:
    return Managed("moto", settings.state_dir)


def moto_command(settings: Settings) -> list[str]:
    """moto server serving one request at a time, as DynamoDB's atomic writes need (operate/moto_server.py)."""
    return [sys.executable, "-m", "operate.moto_server", "-H", settings.host, "-p", str(settings.moto_port)]


def _check_node() -> str:
    node = shutil.which("node")
    if not node:
        raise FatalError(f"Node.js is not installed; install Node >= {MIN_NODE_MAJOR} (it runs kinesis-mock)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_NODE_MAJOR:
        raise FatalError(f"Node.js {version or '?'} is too old; install Node >= {MIN_NODE_MAJOR}")
    return node


def _wait(what: str, probe: Callable[[], Any], proc: Managed, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.pid() is None:
            tail = proc.log_file.read_text(errors="replace")[-400:] if proc.log_file.exists() else ""
            last_line = (tail.strip().splitlines() or ["(empty log)"])[-1]
            raise FatalError(f"{what} exited while starting; see {proc.log_file}: {last_line}")
        try:
            probe()
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    raise FatalError(f"{what} did not answer within {timeout:.0f}s ({last}); see {proc.log_file}")


def _check_local_extra() -> None:
    """The stand-ins' Python parts come with the `local` extra: without it, one line naming the install."""
    import importlib.util

    missing = [name for name in ("moto", "flask") if importlib.util.find_spec(name) is None]
    if missing:
        raise FatalError(
            f"the local stack runs moto server (DynamoDB, S3 and Firehose), and this install lacks "
            f"{' and '.join(missing)}: pip install 'coinstream[local]'"
        )


#: kinesis-mock writes its whole state to disk this often when durable (`coinstream run`).
PERSIST_SECONDS = 5
#: ... and its V8 heap is bounded to this (the stream is emptied every few hours: it holds hours, not weeks).
KINESIS_MOCK_HEAP_MIB = 512


def kinesis_data_dir(settings: Settings) -> Path:
    """Where a durable kinesis-mock keeps its state (`up(durable=True)`)."""
    return settings.state_dir / "kinesis-mock"


def durable(settings: Settings) -> bool:
    """Whether the running kinesis-mock keeps its stream on disk (started by `coinstream run`)."""
    return (kinesis_data_dir(settings) / ".durable").exists() and kinesis_proc(settings).pid() is not None


def up(settings: Settings, pipeline: Pipeline, *, durable: bool = False) -> list[str]:
    """Start the stack and create the pipeline's resources; on any failure stop what was started.

    `durable`: kinesis-mock writes its stream to the state folder every PERSIST_SECONDS and reads it back when it
    starts (a restart or a reboot keeps what the consumers had not read yet). moto's state is not kept: what it
    holds is rebuilt (leases: the applications read the kept stream again; the warehouse's views drop the copies),
    or copied to the state folder as it comes (dead letters; `coinstream run`)."""
    km, moto = kinesis_proc(settings), moto_proc(settings)
    if km.pid() and moto.pid():
        # started by a command that may not have seen them answer (killed while starting): wait for both
        _wait("kinesis-mock", lambda: _stream_active(client("kinesis", settings), pipeline.stream_name), km)
        _wait("moto server", lambda: client("s3", settings).list_buckets(), moto)
        create_resources(settings, pipeline)
        return ["already running"]
    _check_local_extra()
    node, mock = _check_node(), kinesis_mock_dir(settings)
    started: list[Managed] = []
    try:
        if km.pid() is None:
            ensure_port_free(settings.kinesis_port, "kinesis-mock", "COINSTREAM_KINESIS_PORT")
            ensure_port_free(settings.kinesis_tls_port, "kinesis-mock TLS", "COINSTREAM_KINESIS_TLS_PORT")
        if moto.pid() is None:
            ensure_port_free(settings.moto_port, "moto server", "COINSTREAM_MOTO_PORT", settings.host)
        env = dict(os.environ)
        if km.pid() is None:
            env.update(
                KINESIS_MOCK_CERT_PATH=str(mock / "server.json"),
                KINESIS_MOCK_PLAIN_PORT=str(settings.kinesis_port),
                KINESIS_MOCK_TLS_PORT=str(settings.kinesis_tls_port),
                INITIALIZE_STREAMS=f"{pipeline.stream_name}:{pipeline.shards}",
                AWS_REGION=settings.region,
                LOG_LEVEL="WARN",
            )
            marker = kinesis_data_dir(settings) / ".durable"
            marker.unlink(missing_ok=True)
            if durable:
                marker.parent.mkdir(parents=True, exist_ok=True)
                env.update(
                    SHOULD_PERSIST_DATA="true",
                    LOAD_DATA_IF_EXISTS="true",
                    PERSIST_PATH=str(marker.parent),
                    PERSIST_INTERVAL=f"{PERSIST_SECONDS}s",
                    # Node grows its heap lazily to gigabytes on a 24 GB machine (1,088 MiB RSS after ten minutes
                    # of `coinstream run`, the stream emptied twice): a bound makes it collect instead
                    NODE_OPTIONS=f"--max-old-space-size={KINESIS_MOCK_HEAP_MIB}",
                )
                marker.touch()
            km.start([node, str(mock / "main.js")], env)
            started.append(km)
        if moto.pid() is None:
            moto.start(moto_command(settings), child_env(settings))
            started.append(moto)
        kinesis = client("kinesis", settings)
        _wait("kinesis-mock", lambda: _stream_active(kinesis, pipeline.stream_name), km)
        _wait("moto server", lambda: client("s3", settings).list_buckets(), moto)
        create_resources(settings, pipeline)
    except BaseException:
        for proc in started:
            proc.stop()
        raise
    return [p.name for p in started]


def _stream_active(kinesis: Any, name: str) -> None:
    status = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
    if status != "ACTIVE":
        raise RuntimeError(f"stream {name} is {status}")


def renew_stream(settings: Settings, pipeline: Pipeline, timeout: float = 60.0) -> None:
    """Delete the stream and create it again, empty, with the pipeline's shards: kinesis-mock never trims by
    retention, so this is how `coinstream run` bounds it, once every application has read and the warehouse
    loaded what it held (the applications' KCL tables must go too: the new shards reuse the old ids)."""
    kinesis = client("kinesis", settings)
    deadline = time.monotonic() + timeout
    try:
        try:
            kinesis.delete_stream(StreamName=pipeline.stream_name, EnforceConsumerDeletion=True)
        except kinesis.exceptions.ResourceNotFoundException:
            pass  # an earlier renewal stopped between the delete and the create
        while time.monotonic() < deadline:
            try:
                kinesis.describe_stream_summary(StreamName=pipeline.stream_name)
            except kinesis.exceptions.ResourceNotFoundException:
                break
            time.sleep(0.2)
        kinesis.create_stream(StreamName=pipeline.stream_name, ShardCount=pipeline.shards)
        while time.monotonic() < deadline:
            try:
                _stream_active(kinesis, pipeline.stream_name)
                break
            except RuntimeError:
                time.sleep(0.2)
        else:
            raise FatalError(f"stream {pipeline.stream_name} did not become active within {timeout:.0f}s")
    except CoinstreamError:
        raise
    except Exception as exc:
        raise classify(exc, f"renewing the stream {pipeline.stream_name}") from None
    create_resources(settings, pipeline)


def create_resources(settings: Settings, pipeline: Pipeline) -> None:
    """Create (idempotently) the bucket, its jsonpaths objects, the live table and the delivery streams."""
    s3 = client("s3", settings)
    firehose = client("firehose", settings)
    kinesis = client("kinesis", settings)
    try:
        summary = kinesis.describe_stream_summary(StreamName=pipeline.stream_name)["StreamDescriptionSummary"]
        if pipeline.retention_hours > summary["RetentionPeriodHours"]:
            kinesis.increase_stream_retention_period(
                StreamName=pipeline.stream_name, RetentionPeriodHours=pipeline.retention_hours
            )
        if pipeline.bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=pipeline.bucket)
        dynamodb = client("dynamodb", settings)
        if pipeline.live_table not in dynamodb.list_tables()["TableNames"]:
            live_table.create(dynamodb, pipeline.live_table)
        existing = set(firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"])
        for stream in load_delivery_streams(pipeline).values():
            jsonpaths = pipeline.root / "s3" / stream.jsonpaths_file
            if not jsonpaths.is_file():
                raise FatalError(f"{jsonpaths}: missing; the delivery stream {stream.name} names it in its CopyOptions")
            s3.put_object(Bucket=pipeline.bucket, Key=stream.jsonpaths_key, Body=jsonpaths.read_bytes())
            if stream.name not in existing:
                firehose.create_delivery_stream(**local_definition(stream))
    except CoinstreamError:
        raise
    except Exception as exc:
        raise classify(exc, "creating the local resources") from None


def down(settings: Settings) -> list[str]:
    """Stop every process of the stack, the consumers and dashboards that use it first (each worker checkpoints
    what it delivered); returns the names of those that were running."""
    stack = (moto_proc(settings), kinesis_proc(settings))
    users = [
        Managed(file.stem, settings.state_dir)
        for file in sorted((settings.state_dir / "run").glob("*.pid"))
        if file.stem not in {p.name for p in stack}
    ]
    # `coinstream run` stops its producers, workers and a last load in order (the workers' minute included)
    waits = {"coinstream-run": 150.0, "kcl-": 30.0}
    return [
        p.name
        for p in (*users, *stack)
        if p.stop(timeout=next((t for prefix, t in waits.items() if p.name.startswith(prefix)), 10.0))
    ]


@dataclass
class Status:
    """What `coinstream local status` reports."""

    processes: dict[str, tuple[int | None, int]] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)
    #: S3 prefix -> (objects, rows): delivered rows per delivery stream, dead-lettered records
    objects: dict[str, tuple[int, int]] = field(default_factory=dict)
    live_minutes: int | None = None
    delivery_streams: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def status(
    settings: Settings,
    pipeline: Pipeline,
    count_records: Callable[[], dict[str, int]] | None = None,
    count_rows: Callable[[], dict[str, int]] | None = None,
) -> Status:
    """Collect what runs, on which port, and how much each stream, bucket and table holds."""
    out = Status()
    out.processes = {
        "kinesis-mock": (kinesis_proc(settings).pid(), settings.kinesis_port),
        "moto": (moto_proc(settings).pid(), settings.moto_port),
    }
    if out.processes["kinesis-mock"][0] and count_records:
        try:
            out.stream = {"name": pipeline.stream_name, **count_records()}
        except CoinstreamError as exc:
            out.problems.append(str(exc))
    if out.processes["moto"][0]:
        try:
            s3 = client("s3", settings)
            prefixes = [s.prefix for s in load_delivery_streams(pipeline).values()] + [pipeline.dead_letter_prefix]
            out.objects = {prefix: delivered_rows(s3, pipeline.bucket, prefix) for prefix in prefixes}
            out.live_minutes = len(read_minutes(client("dynamodb", settings), pipeline.live_table))
            out.delivery_streams = client("firehose", settings).list_delivery_streams()["DeliveryStreamNames"]
        except Exception as exc:
            out.problems.append(str(classify(exc, "reading the local bucket")))
    if count_rows:
        out.tables = count_rows()
    return out


def stack_panel(settings: Settings, pipeline: Pipeline) -> dict[str, Any]:
    """Consumer lag, dead letters and the live app's newest minute, when the local stack runs."""
    panel: dict[str, Any] = {"consumer_lag": None, "dead_letters": None, "live_newest": None}
    if settings.target != "local" or not kinesis_proc(settings).pid():
        return panel
    from consumer.runner import app_progress  # the dashboard's install has the consumer; `local up` may not

    try:
        panel["consumer_lag"] = sum(s.behind for s in app_progress(settings, pipeline, "warehouse"))
        status_now = status(settings, pipeline)
        panel["dead_letters"] = status_now.objects.get(pipeline.dead_letter_prefix, (0, 0))[1]
        minutes = read_minutes(client("dynamodb", settings), pipeline.live_table)
        panel["live_newest"] = minutes[-1]["minute"] if minutes else None
    except Exception as exc:
        logger.debug("stack panel: %s", exc)
    return panel
