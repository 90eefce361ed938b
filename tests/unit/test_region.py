"""Which region coinstream talks to: COINSTREAM_REGION, else the standard AWS chain, as every AWS tool resolves it."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinstream.aws import child_env, client
from coinstream.config import Pipeline, Settings
from consumer.daemon import properties


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "us-east-1"),
        ({"AWS_REGION": "ap-northeast-2"}, "ap-northeast-2"),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_REGION": "ap-northeast-2", "AWS_DEFAULT_REGION": "eu-west-1"}, "ap-northeast-2"),
        ({"AWS_REGION": "ap-northeast-2", "COINSTREAM_REGION": "us-west-2"}, "us-west-2"),
    ],
)
def test_the_region_follows_the_aws_chain_unless_coinstream_names_one(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(target="aws")
    assert settings.region == expected
    assert client("kinesis", settings).meta.region_name == expected
    assert child_env(settings)["AWS_REGION"] == expected  # the KCL daemon and its processors
    assert f"regionName = {expected}\n" in properties(settings, Pipeline.load(settings.pipeline_file), "warehouse")


def test_the_profiles_region_counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    config = tmp_path / "config"
    config.write_text("[profile seoul]\nregion = ap-northeast-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "seoul")
    assert Settings(target="aws").region == "ap-northeast-2"
