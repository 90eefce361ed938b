"""Where `coinstream local up` finds kinesis-mock: the setting, the checkout, or the folder it runs in (a wheel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinstream.config import Settings
from coinstream.errors import FatalError
from operate import local_stack


def installed(folder: Path) -> Path:
    package = folder / "node_modules" / "kinesis-local"
    package.mkdir(parents=True)
    (package / "main.js").write_text("// kinesis-mock")
    return package


def test_the_setting_then_the_checkout_then_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = installed(tmp_path / "elsewhere")
    assert local_stack.kinesis_mock_dir(Settings(kinesis_mock_dir=chosen)) == chosen
    assert (local_stack.kinesis_mock_dir(Settings()) / "main.js").is_file()  # this checkout's `make setup`
    monkeypatch.setattr(local_stack, "REPO_ROOT", tmp_path / "site-packages")  # an installed wheel: no checkout
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FatalError, match=r"npm install kinesis-local@0\.6\.2.*COINSTREAM_KINESIS_MOCK_DIR") as said:
        local_stack.kinesis_mock_dir(Settings())
    assert "\n" not in str(said.value)
    here = installed(tmp_path)
    assert local_stack.kinesis_mock_dir(Settings()) == here


def test_the_version_named_is_the_one_package_json_pins() -> None:
    import json

    from coinstream import REPO_ROOT

    pinned = json.loads((REPO_ROOT / "package.json").read_text())["dependencies"]["kinesis-local"]
    assert local_stack.KINESIS_MOCK_PACKAGE == f"kinesis-local@{pinned}"


def test_an_install_without_the_local_extra_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`coinstream demo` from a `coinstream[consumer,warehouse]` install ended with "moto server exited while
    starting; see …/moto.log: ModuleNotFoundError: No module named 'moto'" (issue 39): it says which extra to add."""
    import importlib.util

    from coinstream.config import Pipeline, Settings
    from coinstream.errors import FatalError
    from operate import local_stack

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name, *a))
    settings = Settings(state_dir=tmp_path)
    with pytest.raises(FatalError) as said:
        local_stack.up(settings, Pipeline.load(settings.pipeline_file))
    assert str(said.value) == (
        "the local stack runs moto server (DynamoDB, S3 and Firehose), and this install lacks moto: "
        "pip install 'coinstream[local]'"
    )
