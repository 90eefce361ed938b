#!/bin/bash
# coinstream host bootstrap: what a host of the stack runs once, at its first boot, as EC2 user data.
#
# Its launch template (deploy/hosts.json) sets the variables below, then this file follows them; deploy.py drops
# these comment lines to keep the user data small, so no line of a here-document below may start with '#'.
#
#   COINSTREAM_HOST_ROLE          producer (every source every minute, by systemd timers) or worker (one KCL app)
#   COINSTREAM_HOST_APP           a worker's consumer application: warehouse or live
#   COINSTREAM_ARTIFACTS          s3://<bucket>/artifacts/<version>: the wheel, the dependency locks, pipeline.toml
#   COINSTREAM_STATE_URL          s3://<bucket>/state/<role>: the producer's state, kept there after every run
#   COINSTREAM_LOG_GROUP          the CloudWatch Logs group of this role
#   COINSTREAM_SOURCES            the producer's runs, KIND:SOURCE separated by spaces
#   COINSTREAM_X_TOKEN_PARAMETER  the SSM SecureString with X's bearer token (read at run time; empty: none)
#   COINSTREAM_SIGNAL_RESOURCE    the Auto Scaling group (logical id) this host signals: ready, or failed
#   COINSTREAM_READY_SECONDS      a worker: how long its daemon must run without a restart to be ready (60)
#   AWS_REGION, COINSTREAM_STACK_NAME
#
# The stack waits for each host's signal (CreationPolicy, UpdatePolicy WaitOnResourceSignals): cfn-signal says
# success only once the host's service is really up (a producer's first run ended 0, 3 or 4; a worker's daemon ran
# a minute without a restart), failure otherwise, and a failure's log tail goes to the role's log group as the
# stream <instance>-bootstrap (the agent may not run yet), where `coinstream deploy --apply` reads the reason.
#
# It installs Python and (on a worker) a JRE from the distribution, the wheel from the artifacts (the worker with
# the consumer extra, whose amazon-kclpy fetches the KCL jars), writes the systemd units and starts them. No Node,
# no kinesis-mock, no compiler, no SSH key: hosts are reached with SSM Session Manager.
# COINSTREAM_ROOT (tests only) writes every file under a scratch root; the commands it calls are the system's.
set -euo pipefail

root="${COINSTREAM_ROOT:-}"
role="${COINSTREAM_HOST_ROLE:-}"
app="${COINSTREAM_HOST_APP:-}"
artifacts="${COINSTREAM_ARTIFACTS:?COINSTREAM_ARTIFACTS must name the s3:// folder of the artifacts}"
state_url="${COINSTREAM_STATE_URL:-}"
log_group="${COINSTREAM_LOG_GROUP:?COINSTREAM_LOG_GROUP must name the log group of this role}"
sources="${COINSTREAM_SOURCES:-}"
x_parameter="${COINSTREAM_X_TOKEN_PARAMETER:-}"
region="${AWS_REGION:?AWS_REGION must be set}"
stack="${COINSTREAM_STACK_NAME:?COINSTREAM_STACK_NAME must be set}"
signal_resource="${COINSTREAM_SIGNAL_RESOURCE:-}"
export PATH="$PATH:/opt/aws/bin"  # cfn-signal, from aws-cfn-bootstrap

mkdir -p "$root/var/log/coinstream"
bootstrap_log="$root/var/log/coinstream/bootstrap.log"
exec > >(tee -a "$bootstrap_log") 2> >(tee -a "$bootstrap_log" >&2)
instance=""

# The stack hears how the bootstrap ended; a failure's last lines go to the log group themselves.
finish() {
  local status=$?
  [ -n "$signal_resource" ] || return 0
  if [ "$status" != 0 ]; then
    echo "bootstrap: failed (exit $status); the stack is told, and this log's tail is in $log_group"
    report_to_log_group || echo "bootstrap: could not write to $log_group"
    cfn-signal --success false --stack "$stack" --resource "$signal_resource" --region "$region" ||
      echo "bootstrap: cfn-signal failed"
  fi
}
report_to_log_group() {
  command -v aws >/dev/null || return 1
  local stream="${instance:-unknown}-bootstrap" events
  events="$(mktemp)"
  python3 - "$bootstrap_log" >"$events" <<'PY'
import json, sys, time
lines = open(sys.argv[1], errors="replace").read().splitlines()[-100:] or ["(no output)"]
now = int(time.time() * 1000)
print(json.dumps([{"timestamp": now, "message": line[:4000] or " "} for line in lines]))
PY
  aws logs create-log-stream --region "$region" --log-group-name "$log_group" --log-stream-name "$stream" \
    >/dev/null 2>&1 || true
  aws logs put-log-events --region "$region" --log-group-name "$log_group" --log-stream-name "$stream" \
    --log-events "file://$events" >/dev/null
}
trap finish EXIT

case "$role" in
  producer)
    packages=(python3.11 python3.11-pip awscli-2 amazon-cloudwatch-agent logrotate aws-cfn-bootstrap)
    lock=requirements-core.txt
    ;;
  worker)
    case "$app" in
      warehouse | live) ;;
      *) echo "bootstrap: COINSTREAM_HOST_APP='$app': a worker runs warehouse or live" >&2; exit 2 ;;
    esac
    packages=(python3.11 python3.11-pip awscli-2 java-17-amazon-corretto-headless amazon-cloudwatch-agent logrotate
      aws-cfn-bootstrap)
    lock=requirements-consumer.txt
    ;;
  *)
    echo "bootstrap: COINSTREAM_HOST_ROLE='$role': expected producer or worker" >&2
    exit 2
    ;;
esac

# this instance's id (IMDSv2): the log stream of a failure, and a worker's name. -f: an HTTP error's body must
# never become the token or the id
token="$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)"
instance="$(curl -fsS -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/instance-id)"
[[ "$instance" =~ ^i-[0-9a-f]+$ ]] || { echo "bootstrap: IMDS gave no instance id ($instance)" >&2; exit 3; }

opt=/opt/coinstream
units="$root/etc/systemd/system"
mkdir -p "$root$opt/artifacts" "$root$opt/bin" "$root/etc/coinstream" "$root/var/lib/coinstream" \
  "$root/var/log/coinstream" "$units" "$root/etc/logrotate.d" "$root/opt/aws/amazon-cloudwatch-agent/etc"

dnf install -y -q "${packages[@]}"
id coinstream >/dev/null 2>&1 || useradd --system --uid 10001 --home-dir /var/lib/coinstream \
  --shell /sbin/nologin coinstream

# A new stack's hosts boot while `coinstream deploy --apply` waits for it, and it uploads the artifacts once the
# bucket exists: wait for them (an update uploads them before the hosts are replaced).
wheel=""
for attempt in $(seq 1 "${COINSTREAM_ARTIFACT_TRIES:-60}"); do
  if aws s3 cp --recursive --only-show-errors "$artifacts/" "$root$opt/artifacts/"; then
    wheel="$(find "$root$opt/artifacts" -maxdepth 1 -name 'coinstream-*.whl' -print -quit)"
    [ -n "$wheel" ] && [ -f "$root$opt/artifacts/$lock" ] && break
  fi
  wheel=""
  echo "bootstrap: waiting for the artifacts at $artifacts (try $attempt)" >&2
  sleep 30
done
if [ -z "$wheel" ]; then
  echo "bootstrap: no coinstream wheel and $lock under $artifacts: run \`coinstream deploy --apply\` again" >&2
  exit 3
fi
python3.11 -m venv "$root$opt/venv"
"$root$opt/venv/bin/pip" install --quiet --no-cache-dir -r "$root$opt/artifacts/$lock"
"$root$opt/venv/bin/pip" install --quiet --no-cache-dir --no-deps "$wheel"

worker_id=""
if [ "$role" = worker ]; then
  # the KCL worker is named after its instance, so `coinstream doctor` shows which host holds which leases
  worker_id="$instance-$app"
fi

cat >"$root/etc/coinstream/env" <<EOF
COINSTREAM_TARGET=aws
AWS_REGION=$region
COINSTREAM_STACK_NAME=$stack
COINSTREAM_STATE_DIR=/var/lib/coinstream
COINSTREAM_PIPELINE_FILE=$opt/artifacts/config/pipeline.toml
COINSTREAM_X_BEARER_TOKEN_PARAMETER=$x_parameter
COINSTREAM_WORKER_ID=$worker_id
EOF

cat >"$root/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json" <<EOF
{"logs": {"logs_collected": {"files": {"collect_list": [
  {"file_path": "/var/log/coinstream/*.log", "log_group_name": "$log_group",
   "log_stream_name": "{instance_id}", "timezone": "UTC"},
  {"file_path": "/var/lib/coinstream/logs/*.log", "log_group_name": "$log_group",
   "log_stream_name": "{instance_id}-processors", "timezone": "UTC"}]}}}}
EOF

cat >"$root/etc/logrotate.d/coinstream" <<'EOF'
/var/log/coinstream/*.log /var/lib/coinstream/logs/*.log {
    daily
    rotate 3
    missingok
    notifempty
    copytruncate
    compress
}
EOF

enable=()
if [ "$role" = producer ]; then
  cat >"$root$opt/bin/produce" <<EOF
#!/bin/bash
set -euo pipefail
kind="\${1%%:*}"
source="\${1#*:}"
exec $opt/venv/bin/coinstream produce "\$kind" --source "\$source"
EOF
  chmod 0755 "$root$opt/bin/produce"
  cat >"$units/coinstream-produce@.service" <<EOF
[Unit]
Description=coinstream producer run %i
After=network-online.target coinstream-state.service
Wants=network-online.target
Requires=coinstream-state.service

[Service]
Type=oneshot
User=coinstream
EnvironmentFile=/etc/coinstream/env
ExecStart=$opt/bin/produce %i
SuccessExitStatus=3 4
ExecStartPost=/usr/bin/aws s3 sync --only-show-errors --exclude "*.lock" --exclude "*.tmp" /var/lib/coinstream/producer $state_url/
StandardOutput=append:/var/log/coinstream/produce-%i.log
StandardError=inherit
TimeoutStartSec=300
EOF
  cat >"$units/coinstream-produce@.timer" <<EOF
[Unit]
Description=coinstream producer run %i, every minute

[Timer]
OnCalendar=*-*-* *:*:00
AccuracySec=1s
Persistent=true

[Install]
WantedBy=timers.target
EOF
  cat >"$units/coinstream-state.service" <<EOF
[Unit]
Description=coinstream producer state, restored from S3 before the first run (a replaced host goes on)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
User=coinstream
ExecStart=/usr/bin/aws s3 sync --only-show-errors $state_url/ /var/lib/coinstream/producer

[Install]
WantedBy=multi-user.target
EOF
  enable+=(coinstream-state.service)
  for run in $sources; do
    case "$run" in
      candles:* | posts:*) enable+=("coinstream-produce@$run.timer") ;;
      *) echo "bootstrap: '$run' in COINSTREAM_SOURCES: write KIND:SOURCE, e.g. candles:upbit" >&2; exit 2 ;;
    esac
  done
else
  cat >"$units/coinstream-consumer@.service" <<EOF
[Unit]
Description=coinstream KCL worker of the %i application
After=network-online.target
Wants=network-online.target

[Service]
User=coinstream
EnvironmentFile=/etc/coinstream/env
ExecStart=$opt/venv/bin/coinstream consume --app %i --worker-id \${COINSTREAM_WORKER_ID}
Restart=on-failure
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=120
StandardOutput=append:/var/log/coinstream/consumer-%i.log
StandardError=inherit

[Install]
WantedBy=multi-user.target
EOF
  enable+=("coinstream-consumer@$app.service")
fi

chown -R coinstream:coinstream "$root/var/lib/coinstream" "$root/var/log/coinstream"
amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c "file:/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
systemctl daemon-reload
systemctl enable --now "${enable[@]}"
echo "bootstrap: $role${app:+ ($app)} started: ${enable[*]}"

# Ready only when the service really runs: a producer's first run ended 0, 3 (spooled) or 4 (nothing to do), a
# worker's daemon stayed up a minute without a restart. Then the stack hears success; else the trap says failure.
if [ "$role" = producer ]; then
  first="${sources%% *}"
  systemctl start --wait "coinstream-produce@$first.service" || {
    echo "bootstrap: the first run of $first failed: see /var/log/coinstream/produce-$first.log"
    tail -n 20 "$root/var/log/coinstream/produce-$first.log" 2>/dev/null || true
    exit 4
  }
else
  sleep "${COINSTREAM_READY_SECONDS:-60}"
  unit="coinstream-consumer@$app.service"
  if ! systemctl is-active --quiet "$unit" || [ "$(systemctl show -p NRestarts --value "$unit")" != 0 ]; then
    echo "bootstrap: $unit is not running steadily: see /var/log/coinstream/consumer-$app.log"
    tail -n 20 "$root/var/log/coinstream/consumer-$app.log" 2>/dev/null || true
    exit 4
  fi
fi
if [ -n "$signal_resource" ]; then
  cfn-signal --success true --stack "$stack" --resource "$signal_resource" --region "$region"
fi
# what `coinstream doctor` and `deploy --status` look for: a stack's signals are seen only by the stack
aws logs create-log-stream --region "$region" --log-group-name "$log_group" --log-stream-name "$instance-ready" \
  >/dev/null 2>&1 || echo "bootstrap: could not mark $instance ready in $log_group"
echo "bootstrap: ready"
