"""Bad input gets one clear line naming the problem and the fix, and leaves nothing running."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from coinstream import REPO_ROOT
from coinstream.errors import FatalError
from tests.stack import coinstream, running_stack, stack_env


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_port_already_taken_is_named_and_nothing_starts(tmp_path: Path) -> None:
    env = {**os.environ, **stack_env(tmp_path)}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["COINSTREAM_MOTO_PORT"] = str(taken.getsockname()[1])
        line = one_error_line(coinstream(env, "local", "up"))
    assert f"port {env['COINSTREAM_MOTO_PORT']} (moto server) is already in use" in line
    assert "COINSTREAM_MOTO_PORT" in line
    assert not list((tmp_path / "run").glob("*.pid")) if (tmp_path / "run").exists() else True


def test_node_missing_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, **stack_env(tmp_path), "PATH": str(tmp_path / "empty-bin")}
    assert "Node.js is not installed" in one_error_line(coinstream(env, "local", "up"))


def test_java_missing_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, **stack_env(tmp_path), "PATH": str(tmp_path / "empty-bin")}
    assert "Java is not installed" in one_error_line(coinstream(env, "consume", "--until-caught-up"))


def test_missing_kcl_jars_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from consumer import daemon

    monkeypatch.setattr(daemon, "jar_dir", lambda: tmp_path)
    with pytest.raises(FatalError, match="KCL jars are missing.*make setup"):
        daemon.check_java_and_jars()


def test_bad_settings_and_pipeline_files_are_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "COINSTREAM_KINESIS_PORT": "eighty"}
    assert "COINSTREAM_KINESIS_PORT" in one_error_line(coinstream(env, "local", "status"))
    bad = tmp_path / "pipeline.toml"
    bad.write_text("[stream]\nname = 'x'\n")
    env = {**os.environ, "COINSTREAM_PIPELINE_FILE": str(bad)}
    assert "missing key 'bucket'" in one_error_line(coinstream(env, "local", "status"))


def test_malformed_payload_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "coinone").mkdir()
    (tmp_path / "coinone" / "chart.json").write_text("{ truncated")
    line = one_error_line(coinstream(dict(os.environ), "produce", "candles", "--from-dir", str(tmp_path)))
    assert "chart.json: not valid JSON" in line


def test_unknown_stream_name_is_one_line(tmp_path: Path) -> None:
    with running_stack(tmp_path / "state") as (_settings, _pipeline, env):
        other = tmp_path / "pipeline.toml"
        other.write_text(
            (REPO_ROOT / "pipeline.toml")
            .read_text()
            .replace('name = "coinstream-raw"', 'name = "no-such-stream"')
            .replace('"firehose_config/', f'"{REPO_ROOT}/firehose_config/')
        )
        env["COINSTREAM_PIPELINE_FILE"] = str(other)
        line = one_error_line(coinstream(env, "produce", "posts"))
    assert "no-such-stream" in line and "pipeline.toml" in line


def test_kcl_properties_we_write_are_properties_kcl_knows() -> None:
    """KCL silently ignores a mistyped property: check every key against the daemon's configuration class."""
    from coinstream.config import Pipeline, Settings
    from consumer.daemon import DAEMON_CLASS, jar_dir, properties

    jar = next(jar_dir().glob("amazon-kinesis-client-multilang-*.jar"))
    klass = DAEMON_CLASS.replace("MultiLangDaemon", "config.MultiLangDaemonConfiguration")
    fields = subprocess.run(["javap", "-p", "-cp", str(jar), klass], capture_output=True, text=True, check=True).stdout
    polling = subprocess.run(
        ["javap", "-p", "-cp", str(jar), klass.replace("MultiLangDaemonConfiguration", "PollingConfigBean")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    known = fields + polling
    # handled by the configurator itself, not as bean fields
    special = {
        "executableName",
        "processingLanguage",
        "AWSCredentialsProvider",
        "kinesisEndpoint",
        "dynamoDBEndpoint",
        "regionName",
        "initialPositionInStream",
    }
    settings = Settings()
    for target in ("local", "aws"):
        text = properties(settings.model_copy(update={"target": target}), Pipeline.load(settings.pipeline_file), "w")
        for line in text.splitlines():
            key = line.split("=")[0].strip()
            assert key in special or f" {key};" in known, f"KCL has no property {key!r}"


def test_an_unknown_consumer_application_is_one_line_naming_the_known_ones(tmp_path: Path) -> None:
    """A typo (`--app warehous`) silently started a new application that read the whole stream and delivered it a
    second time; `replay --app warehous` said "Reset 0 shards" (issue 39). Both refuse it now, before anything
    starts or is asked."""
    env = {**os.environ, **stack_env(tmp_path / "state")}
    for args in (
        ("consume", "--app", "warehous", "--until-caught-up"),
        ("replay", "--app", "warehous", "--from", "trim-horizon"),
    ):
        line = one_error_line(coinstream(env, *args, timeout=60))
        assert line == (
            "error: unknown consumer application 'warehous': use warehouse or live (a new one reads and delivers the "
            "whole stream again: add its name to [consumers] apps in pipeline.toml first)"
        )
