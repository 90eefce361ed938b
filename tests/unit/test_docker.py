"""The Dockerfiles and the compose file parse, and everything they copy or build exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from coinstream import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
INSTRUCTIONS = {
    "FROM",
    "WORKDIR",
    "ENV",
    "COPY",
    "RUN",
    "USER",
    "ENTRYPOINT",
    "CMD",
    "STOPSIGNAL",
    "ARG",
    "LABEL",
    "EXPOSE",
    "VOLUME",
}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    out, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word, rest))
            pending = ""
    return out


@pytest.mark.parametrize("dockerfile", sorted(DOCKER.glob("Dockerfile.*")), ids=lambda p: p.name)
def test_dockerfile_parses_and_copies_what_exists(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    assert {word for word, _ in steps} <= INSTRUCTIONS
    # every base comes from a build argument (with its registry image as the default), so `make images` can hand
    # it one made from Debian's packages where no registry is reachable
    args = {rest.split("=")[0] for word, rest in steps if word == "ARG"}
    froms = [rest.split()[0] for word, rest in steps if word == "FROM"]
    assert froms and all(f.startswith("${") and f[2:-1] in args for f in froms), froms
    assert steps[0][0] in {"ARG", "FROM"}
    user = next(rest for word, rest in steps if word == "USER")
    assert user != "0" and user != "root"
    stages = {rest.split()[-1] for word, rest in steps if word == "FROM" and " AS " in rest}
    for word, rest in steps:
        if word == "COPY" and rest.startswith("--from="):
            assert rest.split()[0].removeprefix("--from=") in stages, f"{dockerfile.name}: COPY {rest}"
        elif word == "COPY":
            *sources, _dest = rest.split()
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
    if dockerfile.name not in {"Dockerfile.producer", "Dockerfile.consumer"}:
        return  # the local stack's services (kinesis-mock from npm, moto from PyPI)
    assert ("ENTRYPOINT", '["coinstream"]') in steps
    # the non-root user writes its state (lock files, cursors, spool) into a volume it owns, not into root's /app
    assert ("USER", "10001") in steps and ("ENV", "COINSTREAM_STATE_DIR=/var/lib/coinstream") in steps
    assert ("VOLUME", "/var/lib/coinstream") in steps
    assert any(word == "RUN" and "chown 10001 /var/lib/coinstream" in rest for word, rest in steps)


def test_compose_file_parses_and_builds_from_our_dockerfiles() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kinesis", "moto", "resources", "consumer-warehouse", "consumer-live"} <= set(services)
    for name, service in services.items():
        assert "build" in service, f"{name}: built here, never pulled"
        dockerfile = DOCKER / service["build"]["context"] / service["build"]["dockerfile"]
        assert dockerfile.is_file(), name
        # named as `make images` tags it, so images built there are used as they are and none is pulled
        assert service["image"] == f"localhost/coinstream-{dockerfile.suffix.lstrip('.')}:dev", name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert services["resources"]["command"] == ["local", "up", "--resources-only"]
