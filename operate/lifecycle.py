"""The stack's life on AWS: apply it through a change set, read its outputs, create the COPY user, destroy it."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coinstream.aws import run_athena
from coinstream.config import Pipeline
from coinstream.delivery import load_delivery_streams
from coinstream.errors import FatalError

#: CloudFormation takes a template body of at most this many bytes inline (larger ones go through S3).
#: CloudFormation reads a template from S3 (TemplateURL) up to this size.
MAX_TEMPLATE_URL = 1_000_000
#: Each host group and the log group its bootstrap writes its failure to (deploy/hosts.json).
HOST_LOG_GROUPS = {
    "ProducerGroup": "ProducerLogGroup",
    "WarehouseWorkers": "WarehouseWorkerLogGroup",
    "LiveWorkers": "LiveWorkerLogGroup",
}
#: The COPY user Firehose runs as (CopySecret's username); the tables it may insert into.
COPY_USER = "coinstream_copy"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,126}$")
TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}


@dataclass(frozen=True)
class Change:
    """One line of a change set: what CloudFormation will do to one resource."""

    action: str
    logical_id: str
    type: str
    replacement: str


def template_body(template: dict[str, Any]) -> str:
    """The template as CloudFormation receives it: compact JSON, up to what it reads from S3."""
    body = json.dumps(template, separators=(",", ":"))
    if len(body.encode()) > MAX_TEMPLATE_URL:
        raise FatalError(
            f"the template is {len(body.encode()):,} bytes; CloudFormation reads {MAX_TEMPLATE_URL:,} at most: "
            "fewer delivery streams or host groups"
        )
    return body


def template_url(s3: Any, bucket: str, region: str, body: str) -> str:
    """Upload the template to the deploy bucket and name it for CloudFormation (TemplateURL): a template sent
    inline (TemplateBody) may be 51,200 bytes at most, one read from S3 1 MB. The key is the body's hash, so the
    same template is uploaded once."""
    key = f"templates/{hashlib.sha256(body.encode()).hexdigest()[:16]}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
    return object_url(bucket, region, key)


def object_url(bucket: str, region: str, key: str) -> str:
    """The virtual-hosted HTTPS URL of an S3 object in a region (China's endpoints end .amazonaws.com.cn)."""
    host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
    return f"https://{bucket}.{host}{'.cn' if region.startswith('cn-') else ''}/{key}"


def tls_only_policy(bucket: str, region: str) -> str:
    """A bucket policy that refuses every request not made over TLS, with the region's partition in its ARNs."""
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TlsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def deploy_bucket(s3: Any, account: str, region: str, *, tls_only: bool = True) -> str:
    """The bucket `deploy --apply` keeps its templates in, made once per account and region before any stack (the
    stack's own landing bucket does not exist yet when the first template is read): private, encrypted, TLS only
    (`tls_only` off for a stand-in served over plain HTTP), templates expire after 30 days."""
    name = f"coinstream-deploy-{account}-{region}"
    try:
        s3.head_bucket(Bucket=name)
        return name
    except s3.exceptions.ClientError:
        pass
    where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **where)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "templates", "Status": "Enabled", "Filter": {"Prefix": "templates/"}, "Expiration": {"Days": 30}}
            ]
        },
    )
    if not tls_only:
        return name
    s3.put_bucket_policy(Bucket=name, Policy=tls_only_policy(name, region))
    return name


def stack_status(cfn: Any, stack: str) -> str | None:
    """The stack's status, or None when there is no such stack."""
    try:
        return str(cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"])
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def apply(
    cfn: Any,
    stack: str,
    template: tuple[str, str],
    parameters: dict[str, str],
    confirm: Callable[[list[Change]], bool],
    say: Callable[[str], None],
    delay: int = 5,
    while_waiting: Callable[[], None] | None = None,
    logs: Any = None,
) -> dict[str, str] | None:
    """Create or update `stack` through a change set: show it, ask `confirm`, execute, wait; the stack's outputs,
    or None when nothing changed or the change was declined (the change set is removed either way).

    `template` is (body, the URL CloudFormation reads it from); `while_waiting` runs at each poll of the stack (the
    artifacts go up as soon as the bucket exists: the hosts wait for them, and the stack for the hosts). With
    `logs`, a host group that signalled failure has its bootstrap's reason read from its log group, before a
    rollback removes it, and said in the error."""
    body, url = template
    status = stack_status(cfn, stack)
    if status == "ROLLBACK_COMPLETE":
        raise FatalError(
            f"stack {stack} failed to create and was rolled back; see its events, then delete it "
            "(`coinstream deploy --destroy`) before applying again"
        )
    if status is not None and status.endswith("_IN_PROGRESS"):
        raise FatalError(f"stack {stack} is {status}; wait until it finishes, then apply again")
    creating = status is None or status == "REVIEW_IN_PROGRESS"
    declared = set(json.loads(body).get("Parameters", {}))
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise FatalError(
            f"--param {', '.join(unknown)}: the template has no such parameter ({', '.join(sorted(declared))})"
        )
    params: list[dict[str, Any]] = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())]
    if not creating:
        # an update keeps every parameter the running stack has and it is not given; one the stack never had takes
        # its default (CloudFormation refuses UsePreviousValue for a key not in the previous template)
        previous = {p["ParameterKey"] for p in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Parameters", [])}
        params += [
            {"ParameterKey": k, "UsePreviousValue": True} for k in sorted((declared - set(parameters)) & previous)
        ]
    name = f"coinstream-{time.strftime('%Y%m%d-%H%M%S')}"
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName=name,
        ChangeSetType="CREATE" if creating else "UPDATE",
        TemplateURL=url,
        Parameters=params,
        Capabilities=["CAPABILITY_IAM"],
    )
    described = _wait_change_set(cfn, stack, name, delay)
    if described["Status"] == "FAILED":
        reason = str(described.get("StatusReason", ""))
        cfn.delete_change_set(StackName=stack, ChangeSetName=name)
        if "didn't contain changes" in reason or "No updates" in reason:
            say(f"stack {stack} is up to date: nothing to change")
            return None
        raise FatalError(f"CloudFormation refused the change set: {reason}")
    changes = [
        Change(
            c["ResourceChange"]["Action"],
            c["ResourceChange"]["LogicalResourceId"],
            c["ResourceChange"]["ResourceType"],
            str(c["ResourceChange"].get("Replacement", "")),
        )
        for c in described.get("Changes", [])
        if c.get("Type") == "Resource"
    ]
    if not confirm(changes):
        cfn.delete_change_set(StackName=stack, ChangeSetName=name)
        if creating:
            cfn.delete_stack(StackName=stack)  # the empty REVIEW_IN_PROGRESS stack a CREATE change set leaves
        say("not applied; nothing was changed")
        return None
    cfn.execute_change_set(StackName=stack, ChangeSetName=name)
    hosts = HostReasons(cfn, logs, stack) if logs is not None else None

    def poll() -> None:
        if while_waiting is not None:
            while_waiting()
        if hosts is not None:
            hosts.poll()

    final = _wait_stack(cfn, stack, delay, poll)
    if final not in TERMINAL_OK:
        said = "; ".join(failed_events(cfn, stack)) or "see its events"
        told = hosts.told() if hosts is not None else ""
        raise FatalError(f"stack {stack} ended {final}: {said}" + (f"\n{told}" if told else ""))
    return outputs(cfn, stack)


class HostReasons:
    """What the hosts of a failing group said: each group whose event tells of a FAILURE signal (or of signals
    that never came) has its bootstrap's log tail read at once from the role's log group (a rollback of a new
    stack removes the group soon after)."""

    def __init__(self, cfn: Any, logs: Any, stack: str) -> None:
        self.cfn, self.logs, self.stack = cfn, logs, stack
        self.found: dict[str, list[str]] = {}

    def poll(self) -> None:
        """Read the reasons of any group that has newly failed."""
        try:
            events = self.cfn.describe_stack_events(StackName=self.stack).get("StackEvents", [])
        except Exception:  # the stack may be gone mid-rollback; what was read stays
            return
        for e in events:
            group = e.get("LogicalResourceId", "")
            reason = str(e.get("ResourceStatusReason", ""))
            if group in HOST_LOG_GROUPS and group not in self.found and "signal" in reason.lower():
                if "FAILURE" in reason or "Failed to receive" in reason:
                    self.found[group] = [reason, *self._bootstrap_tail(group)]

    def _bootstrap_tail(self, group: str) -> list[str]:
        try:
            log_group = self.cfn.describe_stack_resource(
                StackName=self.stack, LogicalResourceId=HOST_LOG_GROUPS[group]
            )["StackResourceDetail"]["PhysicalResourceId"]
            streams = self.logs.describe_log_streams(logGroupName=log_group, logStreamNamePrefix="i-").get(
                "logStreams", []
            )
            ends = sorted(
                (s for s in streams if s["logStreamName"].endswith("-bootstrap")),
                key=lambda s: s.get("lastEventTimestamp", 0),
            )
            if not ends:
                return [f"(no bootstrap log in {log_group} yet: the host may not have booted)"]
            events = self.logs.get_log_events(
                logGroupName=log_group, logStreamName=ends[-1]["logStreamName"], limit=20, startFromHead=False
            )["events"]
            return [f"  {ends[-1]['logStreamName']}: {ev['message']}" for ev in events]
        except Exception as exc:  # the reason is a courtesy: its absence must not hide the failure itself
            return [f"(the bootstrap's log could not be read: {type(exc).__name__})"]

    def told(self) -> str:
        """Every failed group's reason and its host's last lines."""
        return "\n".join(f"{group}: " + "\n".join(lines) for group, lines in self.found.items())


def _wait_change_set(cfn: Any, stack: str, name: str, delay: int) -> dict[str, Any]:
    for _ in range(max(1, 1800 // delay)):
        described: dict[str, Any] = cfn.describe_change_set(StackName=stack, ChangeSetName=name)
        if described["Status"] in {"CREATE_COMPLETE", "FAILED"}:
            return described
        time.sleep(delay)
    raise FatalError(f"change set {name} of {stack} was not ready after 30 minutes")


def _wait_stack(cfn: Any, stack: str, delay: int, poll: Callable[[], None] | None = None) -> str:
    for _ in range(max(1, 7200 // delay)):
        status = stack_status(cfn, stack)
        if poll is not None:
            poll()
        if status is None:
            return "DELETE_COMPLETE"
        if not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(delay)
    raise FatalError(f"stack {stack} was still changing after 2 hours; see its events in the console")


def resource_id(cfn: Any, stack: str, logical: str) -> str | None:
    """A resource's physical id once CloudFormation has created it (None before)."""
    try:
        detail = cfn.describe_stack_resource(StackName=stack, LogicalResourceId=logical)["StackResourceDetail"]
    except cfn.exceptions.ClientError:
        return None
    return str(detail["PhysicalResourceId"]) if detail.get("ResourceStatus") in TERMINAL_OK else None


def failed_events(cfn: Any, stack: str) -> list[str]:
    """The reasons CloudFormation gave for the resources that failed, newest first."""
    events = cfn.describe_stack_events(StackName=stack).get("StackEvents", [])
    return [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if str(e.get("ResourceStatus", "")).endswith("_FAILED")
    ][:5]


def outputs(cfn: Any, stack: str) -> dict[str, str]:
    """The stack's outputs by key."""
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def upload_jsonpaths(s3: Any, pipeline: Pipeline, bucket: str) -> list[str]:
    """Put the jsonpaths files COPY names into the deployed bucket (what `coinstream local up` does locally)."""
    keys = []
    for stream in load_delivery_streams(pipeline).values():
        body = (pipeline.root / "s3" / stream.jsonpaths_file).read_bytes()
        s3.put_object(Bucket=bucket, Key=stream.jsonpaths_key, Body=body)
        keys.append(stream.jsonpaths_key)
    return keys


def kept_after_destroy(s3: Any, stack: str, described: dict[str, str]) -> list[str]:
    """What outlives the stack, on purpose: the bucket (retained: it holds the backup of every record, and the
    Iceberg tables' files) and the final Redshift snapshot; read before the stack goes."""
    kept = []
    bucket = described.get("LandingBucket")
    if bucket:
        listed = s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)
        count = f"{listed.get('KeyCount', 0)}{'+' if listed.get('IsTruncated') else ''}"
        # a Redshift stack's backup/ keeps every record Firehose delivered; Iceberg's destination keeps only the
        # records it failed to write (FailedDataOnly): there the tables' own files are the copy
        backup = (
            "backup/, the records Firehose failed to write"
            if described.get("Warehouse") == "iceberg"
            else "backup/, every record ever delivered"
        )
        kept.append(
            f"s3://{bucket} ({count} objects, among them {backup}; "
            "versioned: once you no longer need it, empty it with the S3 console's Empty (every version goes), "
            f"then `aws s3 rb s3://{bucket}`)"
        )
    if described.get("Warehouse") == "serverless":
        kept.append(f"Redshift Serverless snapshot {stack}-final (delete it in the Redshift console)")
    elif described.get("RedshiftCluster"):
        kept.append(
            "the Redshift cluster's final snapshot (DeletionPolicy Snapshot; delete it in the Redshift console)"
        )
    if described.get("Warehouse") == "iceberg":
        kept.append(
            "the Iceberg tables' data and metadata files under iceberg/ in that bucket (the Glue tables that "
            "describe them go with the stack; registering the newest metadata file again restores a table)"
        )
    else:
        kept.append("the two secrets stay recoverable for Secrets Manager's 7-30 day window, then go")
    return kept


def destroy(cfn: Any, stack: str, delay: int = 5) -> None:
    """Delete the stack and wait; a failure names the resources that would not go."""
    cfn.delete_stack(StackName=stack)
    final = _wait_stack(cfn, stack, delay)
    if final != "DELETE_COMPLETE":
        raise FatalError(f"stack {stack} ended {final}: {'; '.join(failed_events(cfn, stack)) or 'see its events'}")


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise FatalError(f"{name!r} is not a plain SQL name (firehose_config DataTableName, the COPY user)")
    return name


def copy_user_statements(username: str, password: str, tables: list[str], *, exists: bool) -> list[str]:
    """SQL that makes `username` the COPY user: its password as Redshift's md5 form (md5 of password + user name,
    so the clear password never travels in SQL text), schema usage, INSERT on the raw tables and nothing else."""
    digest = "md5" + hashlib.md5((password + username).encode(), usedforsecurity=False).hexdigest()
    verb = "ALTER" if exists else "CREATE"
    tables = [_identifier(t) for t in [username, *tables]][1:]
    return [
        f"{verb} USER {username} PASSWORD '{digest}'",
        f"GRANT USAGE ON SCHEMA public TO {username}",
        f"GRANT INSERT ON TABLE {', '.join(tables)} TO {username}",
    ]


def _admin_target(described: dict[str, str]) -> dict[str, str]:
    """Where the Data API runs as the admin user (the stack's RedshiftSecretArn): the workgroup or the cluster."""
    where = "RedshiftWorkgroup" if described.get("Warehouse") == "serverless" else "RedshiftCluster"
    missing = [key for key in ("RedshiftSecretArn", where) if not described.get(key)]
    if missing:
        raise FatalError(f"the stack has no output {', '.join(missing)}: update it with `coinstream deploy --apply`")
    target = {"Database": "coinstream", "SecretArn": described["RedshiftSecretArn"]}
    target["WorkgroupName" if where == "RedshiftWorkgroup" else "ClusterIdentifier"] = described[where]
    return target


def _wait_statement(data_api: Any, statement: str, delay: float, timeout: float) -> dict[str, Any]:
    for _ in range(max(1, int(timeout / delay))):
        state: dict[str, Any] = data_api.describe_statement(Id=statement)
        if state["Status"] in {"FINISHED", "FAILED", "ABORTED"}:
            return state
        time.sleep(delay)
    return {"Status": "TIMEOUT", "Error": f"no answer after {timeout:g} s"}


def run_sql(
    data_api: Any, described: dict[str, str], sql: str, *, delay: float = 1.0, timeout: float = 300.0
) -> tuple[str, str]:
    """Run one statement through the Redshift Data API as the admin user (the stack's RedshiftSecretArn), on the
    workgroup or the cluster the stack made; (statement id, error text or "")."""
    statement = str(data_api.execute_statement(Sql=sql, **_admin_target(described))["Id"])
    state = _wait_statement(data_api, statement, delay, timeout)
    return statement, "" if state["Status"] == "FINISHED" else str(state.get("Error", state["Status"]))


#: BatchExecuteStatement takes at most this many statements (one transaction).
BATCH_LIMIT = 40


def schema_statements(redshift_dir: Path) -> list[tuple[str, str]]:
    """(file name, statement) of redshift/*.sql in order, as written: every one can run again (IF NOT EXISTS,
    OR REPLACE, INSERTs that fill an empty table only)."""
    try:
        from coinstream.tables import redshift_texts  # sqlglot: the warehouse extra
    except ImportError:
        raise FatalError(
            "applying redshift/*.sql splits it with sqlglot: pip install 'coinstream[warehouse]'"
        ) from None
    return [(f.name, sql) for f in sorted(redshift_dir.glob("*.sql")) for sql in redshift_texts(f)]


def apply_schema(
    data_api: Any, described: dict[str, str], redshift_dir: Path, *, delay: float = 1.0, timeout: float = 600.0
) -> int:
    """redshift/*.sql through the Data API as the admin user, in one transaction (all or nothing); how many
    statements ran. A refusal names the file and the statement's first line."""
    statements = schema_statements(redshift_dir)
    if len(statements) > BATCH_LIMIT:
        raise FatalError(f"redshift/*.sql holds {len(statements)} statements; one Data API batch takes {BATCH_LIMIT}")
    batch = data_api.batch_execute_statement(Sqls=[sql for _, sql in statements], **_admin_target(described))
    state = _wait_statement(data_api, str(batch["Id"]), delay, timeout)
    if state["Status"] == "FINISHED":
        return len(statements)
    failed = next(
        (n for n, sub in enumerate(state.get("SubStatements", [])) if sub.get("Status") in {"FAILED", "ABORTED"}),
        None,
    )
    error = str(state.get("Error", state["Status"]))
    if failed is not None and failed < len(statements):
        name, sql = statements[failed]
        raise FatalError(
            f"Redshift refused {name}'s `{sql.splitlines()[0]}`: {error}; nothing of the schema was applied "
            "(one transaction); fix it and run `coinstream deploy --schema`"
        )
    raise FatalError(f"the schema was not applied: {error}; run `coinstream deploy --schema` again")


def grant_copy_user(
    data_api: Any, secrets: Any, described: dict[str, str], tables: list[str], delay: float = 1.0
) -> list[str]:
    """Create (or re-password) the COPY user in Redshift through the Redshift Data API as the admin user, with the
    password Firehose reads from CopySecret; returns the statements' ids. Run it after the tables exist and after
    rotating CopySecret."""
    copy = json.loads(secrets.get_secret_value(SecretId=described["CopySecretArn"])["SecretString"])
    ids = []
    for sql in copy_user_statements(copy["username"], copy["password"], tables, exists=False):
        statement, error = run_sql(data_api, described, sql, delay=delay)
        if error and "already exists" in error and sql.startswith("CREATE USER"):
            sql = copy_user_statements(copy["username"], copy["password"], tables, exists=True)[0]
            statement, error = run_sql(data_api, described, sql, delay=delay)
        if error:
            first = sql.split(" PASSWORD ")[0]  # never the password's digest
            raise FatalError(f"Redshift refused `{first} ...`: {error} (were redshift/*.sql run first?)")
        ids.append(statement)
    return ids


def _newest_rows_sql(tables: list[str]) -> str:
    # the names are firehose_config's DataTableName values, checked to be plain identifiers
    return " UNION ALL ".join(
        f"SELECT '{t}', CAST(MAX(fetched_at) AS VARCHAR) FROM {t}"  # noqa: S608
        for t in map(_identifier, tables)
    )


def newest_rows(
    data_api: Any, described: dict[str, str], tables: list[str], *, delay: float = 1.0, timeout: float = 20.0
) -> dict[str, str | None]:
    """The newest fetched_at in each raw table (None: empty), in one Data API statement."""
    statement, error = run_sql(data_api, described, _newest_rows_sql(tables), delay=delay, timeout=timeout)
    if error:
        raise FatalError(f"the warehouse did not answer `SELECT MAX(fetched_at) ...`: {error}")
    records = data_api.get_statement_result(Id=statement)["Records"]
    return {row[0]["stringValue"]: None if row[1].get("isNull") else row[1]["stringValue"] for row in records}


def newest_lake_rows(
    athena: Any, described: dict[str, str], tables: list[str], *, delay: float = 1.0, timeout: float = 60.0
) -> dict[str, str | None]:
    """The newest fetched_at in each Iceberg table (None: empty), in one Athena query of the stack's workgroup."""
    (query,) = run_athena(
        athena,
        described["AthenaWorkGroup"],
        described["LakeDatabase"],
        [_newest_rows_sql(tables)],
        delay=delay,
        timeout=timeout,
    )
    rows = athena.get_query_results(QueryExecutionId=query)["ResultSet"]["Rows"][1:]  # the first row: the header
    return {row["Data"][0]["VarCharValue"]: row["Data"][1].get("VarCharValue") for row in rows}
