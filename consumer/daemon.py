"""Runs the real KCL MultiLangDaemon (Java, amazon-kclpy's jars) with a generated properties file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import amazon_kclpy

from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError

DAEMON_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
LOGBACK = Path(__file__).with_name("logback.xml")
#: The local stack's daemon is a short-lived guest on a laptop: the quick JIT tier alone and one GC thread
#: (coinstream demo: 10.6-11.3 s of CPU without them, 7.4-7.8 s with). On AWS the JVM's defaults serve a
#: long-running worker.
LOCAL_JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
MIN_JAVA_MAJOR = 11


#: The consumer applications a deployment runs (the README's systemd units): `warehouse` and `live`.
DEPLOYED_APPS = ("warehouse", "live")


def application_name(app: str) -> str:
    """The KCL application name (and lease table name) of a coinstream consumer app."""
    return f"coinstream-{app}"


def jar_dir() -> Path:
    """Where amazon-kclpy put the KCL jars when it was installed."""
    return Path(amazon_kclpy.__file__).parent / "jars"


def check_java_and_jars() -> str:
    """The java executable; one clear FatalError line when Java or the KCL jars are missing."""
    java = shutil.which("java")
    if not java:
        raise FatalError(
            f"Java is not installed; install a JDK >= {MIN_JAVA_MAJOR} (17 is tested) to run the KCL daemon"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    try:
        version = out.split('"')[1]
        major = int(version.split(".")[0] if not version.startswith("1.") else version.split(".")[1])
    except (IndexError, ValueError):
        major = 0
    if major < MIN_JAVA_MAJOR:
        raise FatalError(f"Java {major or '?'} is too old for KCL 3; install a JDK >= {MIN_JAVA_MAJOR}")
    jars = list(jar_dir().glob("amazon-kinesis-client-multilang-*.jar"))
    if not jars:
        raise FatalError(
            f"the KCL jars are missing from {jar_dir()}; reinstall with `make setup` "
            "(amazon-kclpy downloads them from Maven Central while it builds)"
        )
    return java


#: Waits a new application does not need on one host (benchmarks/kcl_start.py measures them against KCL's
#: defaults). Each names the KCL 3.1.3 code that waits.
FAST_START: dict[str, str | int] = {
    # ShardSyncTask sleeps this long after the first shard sync created leases, inside Scheduler.initialize
    # (default 60,000: the minute between "Newly created leases" and "Initializing MigrationStateMachine")
    "shardSyncIntervalMillis": 1000,
    # Not changed: leaseAssignmentIntervalMillis (the leader's LeaseAssignmentManager, default 2 x
    # failoverTimeMillis). At 1 s the leader also rebalanced every 3 s and kept handing leases to a stopped
    # worker whose metrics were still fresh; a replay-after-split test then left two shards without a
    # record processor for 8 minutes. The default costs one interval at a new application's start.
}


def properties(settings: Settings, pipeline: Pipeline, app: str, worker_id: str | None = None) -> str:
    """The daemon's properties for `app` on the configured target (local stack or AWS)."""
    props: dict[str, str | int] = {
        "executableName": f"{sys.executable} -m consumer.app --app {app}",
        "streamName": pipeline.stream_name,
        "applicationName": application_name(app),
        "processingLanguage": f"python/{sys.version_info.major}.{sys.version_info.minor}",
        "initialPositionInStream": "TRIM_HORIZON",
        "regionName": settings.region,
        "retrievalMode": "POLLING",
        "callProcessRecordsEvenForEmptyRecordList": "true",
        "shutdownGraceMillis": 15000,
        "failoverTimeMillis": 10000,
    }
    if worker_id:
        props["workerIdentifier"] = worker_id
    if settings.target == "local":
        props.update(
            {
                "AWSCredentialsProvider": "EnvironmentVariableCredentialsProvider",
                "kinesisEndpoint": str(settings.endpoint("kinesis")),
                "dynamoDBEndpoint": str(settings.endpoint("dynamodb")),
                "metricsLevel": "NONE",
                # a read a second per shard, as on AWS: at 250 ms an idle stack's kinesis-mock alone took a quarter
                # of a core (two applications, two shards) and the daemons 6% each; at 1 s, 9% and 3%
                "idleTimeBetweenReadsInMillis": 1000,
                # kinesis-mock (Scala.js on Node) starves and drops HTTP/2 streams on 10,000-record
                # GetRecords answers; smaller reads keep it responsive.
                "maxRecords": 1000,
                "parentShardPollIntervalMillis": 1000,
                **(FAST_START if settings.kcl_fast_start else {}),
            }
        )
    else:
        props.update(
            {
                "AWSCredentialsProvider": "DefaultCredentialsProvider",
                "metricsLevel": "SUMMARY",
                "idleTimeBetweenReadsInMillis": 1000,
            }
        )
    return "".join(f"{k} = {v}\n" for k, v in props.items())


def command(settings: Settings, pipeline: Pipeline, app: str, worker_id: str | None = None) -> tuple[list[str], Path]:
    """The java command line, after writing its properties file under the state folder."""
    java = check_java_and_jars()
    conf = settings.state_dir / "kcl"
    conf.mkdir(parents=True, exist_ok=True)
    prop_file = conf / f"{app}{'-' + worker_id if worker_id else ''}.properties"
    prop_file.write_text(properties(settings, pipeline, app, worker_id))
    classpath = f"{jar_dir()}/*:{conf}"
    argv = [
        java,
        *(LOCAL_JVM_OPTIONS if settings.target == "local" else ()),
        "-cp",
        classpath,
        f"-Dlogback.configurationFile={LOGBACK}",
        DAEMON_CLASS,
        "--properties-file",
        str(prop_file),
    ]
    return argv, prop_file
