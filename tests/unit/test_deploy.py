"""The CloudFormation template: up to date, least privilege, Redshift closed to the world, lint-clean."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from coinstream import REPO_ROOT
from coinstream.aws import run_athena
from coinstream.config import Pipeline
from coinstream.delivery import backup_configuration
from coinstream.errors import FatalError
from coinstream.secrets import x_token
from consumer.daemon import DEPLOYED_APPS
from operate.cost import Traffic, estimate
from operate.deploy import PLACEHOLDERS, WAREHOUSES, committed_path, render, render_text
from operate.lifecycle import copy_user_statements, grant_copy_user, newest_lake_rows, newest_rows
from warehouse.athena import glue_columns

TEMPLATE = REPO_ROOT / "deploy" / "cloudformation.json"
BASE = REPO_ROOT / "deploy" / "base.json"


def pipeline() -> Pipeline:
    return Pipeline.load(REPO_ROOT / "pipeline.toml")


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for resource in template["Resources"].values():
        for policy in resource.get("Properties", {}).get("Policies", []):
            out.extend(policy["PolicyDocument"]["Statement"])
        if resource["Type"] == "AWS::IAM::Policy":
            out.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return out


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_committed_template_is_rendered_from_the_current_files(warehouse: str) -> None:
    committed = committed_path(pipeline(), warehouse)
    assert committed.read_text() == render_text(pipeline(), BASE, warehouse), (
        f"{committed.name} is stale: run `COINSTREAM_WAREHOUSE={warehouse} coinstream deploy --render {committed}`"
    )


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_iam_has_no_wildcard_action_and_wildcard_resources_only_where_aws_has_no_resource_arns(warehouse: str) -> None:
    for statement in statements(render(pipeline(), BASE, warehouse)):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement
        if statement["Resource"] == "*":
            assert actions == ["cloudwatch:PutMetricData"] and "Condition" in statement, statement


def test_hosts_may_read_their_own_stacks_outputs_only() -> None:
    """Producers and KCL workers read the resource names from the stack's outputs (coinstream.aws.deployed)."""
    resources = render(pipeline(), BASE)["Resources"]
    for role in ("ProducerRole", "ConsumerRole"):
        found = [
            s
            for p in resources[role]["Properties"]["Policies"]
            for s in p["PolicyDocument"]["Statement"]
            if "cloudformation:DescribeStacks" in s["Action"]
        ]
        assert found and found[0]["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*"
        }, role


def test_redshift_accepts_only_firehose_and_is_encrypted() -> None:
    template = render(pipeline(), BASE)
    (rule,) = template["Resources"]["RedshiftSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert rule["CidrIp"] == {"Fn::FindInMap": ["FirehoseCidr", {"Ref": "AWS::Region"}, "Cidr"]}
    assert all(
        v["Cidr"] != "0.0.0.0/0" and v["Cidr"].endswith("/27") for v in template["Mappings"]["FirehoseCidr"].values()
    )
    cluster = template["Resources"]["RedshiftCluster"]["Properties"]
    assert cluster["Encrypted"] is True
    assert "{{resolve:secretsmanager:" in json.dumps(cluster)
    workgroup = template["Resources"]["RedshiftWorkgroup"]["Properties"]
    assert workgroup["SecurityGroupIds"] == [{"Fn::GetAtt": ["RedshiftSecurityGroup", "GroupId"]}]


def test_no_plain_password_tls_only_and_every_delivery_logged() -> None:
    template = render(pipeline(), BASE)
    resources = template["Resources"]
    text = json.dumps(template)
    assert '"Password"' not in text and '"Username"' not in text  # Firehose reads the COPY user's secret itself
    # TLS only: the bucket refuses plain HTTP; Redshift (either kind) requires SSL
    (deny,) = resources["LandingBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {"ParameterName": "require_ssl", "ParameterValue": "true"} in resources["RedshiftParameterGroup"][
        "Properties"
    ]["Parameters"]
    assert {"ParameterKey": "require_ssl", "ParameterValue": "true"} in resources["RedshiftWorkgroup"]["Properties"][
        "ConfigParameters"
    ]
    log_streams = {r["Properties"]["LogStreamName"] for r in resources.values() if r["Type"] == "AWS::Logs::LogStream"}
    for logical, resource in resources.items():
        if resource["Type"] != "AWS::KinesisFirehose::DeliveryStream":
            continue
        redshift = resource["Properties"]["RedshiftDestinationConfiguration"]
        assert redshift["SecretsManagerConfiguration"] == {
            "Enabled": True,
            "SecretARN": {"Ref": "CopySecret"},
            "RoleARN": {"Fn::GetAtt": ["FirehoseRole", "Arn"]},
        }
        for where in (redshift, redshift["S3Configuration"], redshift["S3BackupConfiguration"]):
            logging = where["CloudWatchLoggingOptions"]
            assert logging["Enabled"] is True and logging["LogGroupName"] == {"Ref": "DeliveryLogGroup"}, logical
            assert logging["LogStreamName"] in log_streams  # Firehose does not create the stream it logs to
    firehose = statements({"Resources": {k: resources[k] for k in ("FirehoseRole", "FirehoseCopySecretPolicy")}})
    assert {
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": {"Ref": "CopySecret"},
        "Sid": "CopyUserSecret",
    } in firehose


def test_names_are_unique_per_account_and_region_and_outlive_nothing_by_accident() -> None:
    resources = render(pipeline(), BASE)["Resources"]
    bucket = resources["LandingBucket"]
    assert bucket["Properties"]["BucketName"] == {"Fn::Sub": "coinstream-landing-${AWS::AccountId}-${AWS::Region}"}
    assert bucket["DeletionPolicy"] == "Retain"  # it holds the backup of every record; destroy says so
    assert resources["RedshiftNamespace"]["Properties"]["FinalSnapshotName"] == {"Fn::Sub": "${AWS::StackName}-final"}
    # no lifecycle transition: Firehose's per-interval objects are under 128 KB, which IA / Glacier IR never move
    for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]:
        assert "Transitions" not in rule, rule


def test_warehouse_choices_are_serverless_by_default_or_ra3() -> None:
    parameters = render(pipeline(), BASE)["Parameters"]
    assert parameters["Warehouse"]["Default"] == "serverless"
    assert parameters["ServerlessBaseCapacity"]["Default"] == 4
    assert all(t.startswith("ra3.") for t in parameters["RedshiftNodeType"]["AllowedValues"])  # DC2 is retiring


def test_delivery_streams_are_the_firehose_config_files() -> None:
    template = render(pipeline(), BASE)
    streams = {
        r["Properties"]["DeliveryStreamName"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"
    }
    for file in sorted((REPO_ROOT / "firehose_config").glob("*.json")):
        raw = json.loads(file.read_text())
        props = streams[raw["DeliveryStreamName"]]
        redshift = props["RedshiftDestinationConfiguration"]
        assert redshift["SecretsManagerConfiguration"]["SecretARN"] == PLACEHOLDERS["CopySecretArn"]
        assert (
            redshift["CopyCommand"]["DataTableName"]
            == raw["RedshiftDestinationConfiguration"]["CopyCommand"]["DataTableName"]
        )
        assert (
            redshift["S3Configuration"]["BufferingHints"]
            == raw["RedshiftDestinationConfiguration"]["S3Configuration"]["BufferingHints"]
        )
        assert "'s3://${Bucket}/jsonpaths/" in redshift["CopyCommand"]["CopyOptions"]["Fn::Sub"][0]


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_cfn_lint_passes(warehouse: str) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    template = committed_path(pipeline(), warehouse)
    # -c I: the informational rules too (explicit deletion policies, the partition in ARNs, ...)
    result = subprocess.run(
        [str(cfn_lint), "-c", "I", "--", str(template)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(json.dumps(json.loads(template.read_text()), separators=(",", ":"))) < 1_000_000  # TemplateURL limit


def test_the_iceberg_stack_has_no_cluster_and_delivers_every_kind_to_its_glue_table() -> None:
    template = render(pipeline(), BASE, "iceberg")
    resources = template["Resources"]
    assert not [k for k, r in resources.items() if r["Type"].startswith(("AWS::Redshift", "AWS::SecretsManager"))]
    # only the hosts run in the user's VPC: no cluster, no security group of a warehouse
    users = [k for k, v in template["Resources"].items() if '"VpcId"' in json.dumps(v)]
    assert users == ["HostSecurityGroup"]
    tables = {
        r["Properties"]["TableInput"]["Name"]: (k, r) for k, r in resources.items() if r["Type"] == "AWS::Glue::Table"
    }
    columns = glue_columns(REPO_ROOT / "redshift")
    assert set(tables) == set(columns)
    for name, (_, table) in tables.items():
        assert table["Properties"]["OpenTableFormatInput"]["IcebergInput"]["MetadataOperation"] == "CREATE"
        described = table["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
        assert [(c["Name"], c["Type"]) for c in described] == columns[name]
        optimizers = {
            r["Properties"]["Type"]
            for r in resources.values()
            if r["Type"] == "AWS::Glue::TableOptimizer" and r["Properties"]["TableName"] == name
        }
        assert optimizers == {"compaction", "retention", "orphan_file_deletion"}
    for file in sorted((REPO_ROOT / "firehose_config").glob("*.json")):
        raw = json.loads(file.read_text())["RedshiftDestinationConfiguration"]
        logical, stream = next(
            (k, r)
            for k, r in resources.items()
            if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"
            and r["Properties"]["DeliveryStreamName"] == json.loads(file.read_text())["DeliveryStreamName"]
        )
        iceberg = stream["Properties"]["IcebergDestinationConfiguration"]
        (target,) = iceberg["DestinationTableConfigurationList"]
        table = raw["CopyCommand"]["DataTableName"]
        assert target["DestinationTableName"] == table and "UniqueKeys" not in target and iceberg["AppendOnly"]
        assert tables[table][0] in stream["DependsOn"]  # Firehose reads the table when the stream is created
        assert iceberg["s3BackupMode"] == "FailedDataOnly"  # the only mode the API reference allows for Iceberg
        alarm = resources[f"{logical}FailureAlarm"]["Properties"]
        assert alarm["MetricName"] == "DeliveryToIceberg.FailedRowCount"
    workgroup = resources["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert workgroup["EnforceWorkGroupConfiguration"] is True
    assert workgroup["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}


def test_estimate_in_two_regions_with_every_billed_line() -> None:
    bills = {
        (region, warehouse): estimate(pipeline(), Traffic(warehouse=warehouse), region)
        for region in ("us-east-1", "ap-northeast-2")
        for warehouse in ("serverless", "provisioned")
    }
    for (region, _), bill in bills.items():
        assert bill.region == region and bill.as_of
        items = {item for item, _, _ in bill.lines}
        assert {
            "Kinesis shards",
            "Firehose ingestion",
            "DynamoDB on demand",
            "Redshift managed storage",
            "CloudWatch KCL metrics",
            "EC2 hosts",
            "Public IPv4 (hosts)",
        } <= items
    seoul = {i: usd for i, _, usd in bills["ap-northeast-2", "provisioned"].lines}
    virginia = {i: usd for i, _, usd in bills["us-east-1", "provisioned"].lines}
    assert seoul["Kinesis shards"] > virginia["Kinesis shards"] == pytest.approx(2 * 730 * 0.015)
    assert seoul["Redshift provisioned"] > virginia["Redshift provisioned"]
    serverless = {i: b for i, b, _ in bills["us-east-1", "serverless"].lines}
    assert "288 COPYs" in serverless["Redshift Serverless"]  # 3 streams x 96 buffer intervals of 15 minutes a day
    with pytest.raises(FatalError, match="no prices for eu-west-9; priced regions: ap-northeast-2, us-east-1"):
        estimate(pipeline(), Traffic(), "eu-west-9")


def test_firehose_is_billed_at_the_measured_packing_and_grows_with_traffic() -> None:
    def firehose(traffic: Traffic) -> float:
        return {i: usd for i, _, usd in estimate(pipeline(), traffic, "us-east-1").lines}["Firehose ingestion"]

    assert firehose(Traffic(posts_per_minute=10_000)) > firehose(Traffic(posts_per_minute=10)) > 0
    perfect = Traffic(units_per_1000_rows=1000 * 400 / 5120)
    assert firehose(Traffic()) > firehose(perfect)  # the estimate does not assume perfect packing


def test_the_copy_user_gets_insert_only_and_its_password_never_travels_in_clear() -> None:
    statements_ = copy_user_statements("coinstream_copy", "s3cret-Pa55", ["raw_candles", "raw_posts"], exists=False)
    assert statements_ == [
        "CREATE USER coinstream_copy PASSWORD 'md5"
        + hashlib.md5(b"s3cret-Pa55coinstream_copy", usedforsecurity=False).hexdigest()
        + "'",
        "GRANT USAGE ON SCHEMA public TO coinstream_copy",
        "GRANT INSERT ON TABLE raw_candles, raw_posts TO coinstream_copy",
    ]
    assert "s3cret" not in " ".join(statements_)


def test_grant_runs_through_the_data_api_as_admin_and_re_passwords_an_existing_user() -> None:
    """The Redshift Data API answered by botocore's Stubber (moto's never finishes a statement)."""
    secrets = boto3.client("secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    data = boto3.client("redshift-data", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    described = {
        "CopySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:copy-AbCdEf",
        "RedshiftSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin-AbCdEf",
        "Warehouse": "serverless",
        "RedshiftWorkgroup": "coinstream-wg",
    }
    with Stubber(secrets) as s, Stubber(data) as d:
        s.add_response(
            "get_secret_value",
            {"SecretString": json.dumps({"username": "coinstream_copy", "password": "pw"})},
            {"SecretId": described["CopySecretArn"]},
        )
        target = {
            "Database": "coinstream",
            "SecretArn": described["RedshiftSecretArn"],
            "WorkgroupName": "coinstream-wg",
        }
        sqls = copy_user_statements("coinstream_copy", "pw", ["raw_posts"], exists=False)
        altered = copy_user_statements("coinstream_copy", "pw", ["raw_posts"], exists=True)[0]
        for number, (sql, status) in enumerate(
            [(sqls[0], "FAILED"), (altered, "FINISHED"), (sqls[1], "FINISHED"), (sqls[2], "FINISHED")]
        ):
            statement = f"00000000-0000-0000-0000-00000000000{number}"
            d.add_response("execute_statement", {"Id": statement}, {"Sql": sql, **target})
            answer = {"Id": statement, "Status": status}
            if status == "FAILED":
                answer["Error"] = 'ERROR: user "coinstream_copy" already exists'
            d.add_response("describe_statement", answer, {"Id": statement})
        ids = grant_copy_user(data, secrets, described, ["raw_posts"], delay=0.01)
    assert len(ids) == 3


def test_render_and_check_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    result = subprocess.run(
        [sys.executable, "-m", "operate", "deploy", "--check", "--render", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text() == TEMPLATE.read_text()
    assert "AWS::KinesisFirehose::DeliveryStream" in result.stdout and "total" in result.stdout
    # one bill: X's lines beside AWS's, priced for the configured schedule
    assert "X counts requests" in result.stdout and "12/day" in result.stdout and "X total" in result.stdout


def test_newest_row_per_table_in_one_data_api_statement_on_the_cluster() -> None:
    data = boto3.client("redshift-data", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    described = {
        "RedshiftSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin-AbCdEf",
        "Warehouse": "provisioned",
        "RedshiftCluster": "coinstream-cluster",
    }
    statement = "00000000-0000-0000-0000-000000000001"
    with Stubber(data) as d:
        d.add_response(
            "execute_statement",
            {"Id": statement},
            {
                "Sql": "SELECT 'raw_candles', CAST(MAX(fetched_at) AS VARCHAR) FROM raw_candles UNION ALL "
                "SELECT 'raw_posts', CAST(MAX(fetched_at) AS VARCHAR) FROM raw_posts",
                "Database": "coinstream",
                "SecretArn": described["RedshiftSecretArn"],
                "ClusterIdentifier": "coinstream-cluster",
            },
        )
        d.add_response("describe_statement", {"Id": statement, "Status": "FINISHED"}, {"Id": statement})
        d.add_response(
            "get_statement_result",
            {
                "Records": [
                    [{"stringValue": "raw_candles"}, {"stringValue": "2026-11-29 10:15:00"}],
                    [{"stringValue": "raw_posts"}, {"isNull": True}],
                ]
            },
            {"Id": statement},
        )
        found = newest_rows(data, described, ["raw_candles", "raw_posts"], delay=0.01)
    assert found == {"raw_candles": "2026-11-29 10:15:00", "raw_posts": None}
    with pytest.raises(FatalError, match="not a plain SQL name"):
        newest_rows(data, described, ["raw_posts; DROP TABLE raw_posts"])


def test_the_iceberg_warehouse_is_priced_beside_redshift_without_a_cluster() -> None:
    bills = {w: estimate(pipeline(), Traffic(warehouse=w), "us-east-1") for w in ("serverless", "iceberg")}
    lake = {item: (basis, usd) for item, basis, usd in bills["iceberg"].lines}
    assert not [item for item in lake if item.startswith(("Redshift", "Secrets"))]
    assert {"Athena queries", "Glue Data Catalog", "Glue table optimizers", "Firehose ingestion (to Iceberg)"} <= set(
        lake
    )
    assert "no 5 KB rounding" in lake["Firehose ingestion (to Iceberg)"][0]
    assert bills["iceberg"].total < bills["serverless"].total / 3  # 4-RPU Serverless: a third of it, not a quarter
    busier = estimate(pipeline(), Traffic(warehouse="iceberg", queries_per_day=400), "us-east-1")
    assert {i: usd for i, _, usd in busier.lines}["Athena queries"] > lake["Athena queries"][1]


def test_views_run_one_athena_query_each_and_a_refusal_is_named() -> None:
    """Athena answered by botocore's Stubber: the statements are those of warehouse.athena.view_statements."""
    athena = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    statements = ["CREATE OR REPLACE VIEW a AS SELECT 1 AS n", "CREATE OR REPLACE VIEW b AS SELECT n FROM a"]
    with Stubber(athena) as stub:
        for number, sql in enumerate(statements):
            query = f"q{number}"
            stub.add_response(
                "start_query_execution",
                {"QueryExecutionId": query},
                {"QueryString": sql, "WorkGroup": "coinstream", "QueryExecutionContext": {"Database": "coinstream"}},
            )
            for state in ("RUNNING", "SUCCEEDED"):
                stub.add_response(
                    "get_query_execution",
                    {"QueryExecution": {"Status": {"State": state}}},
                    {"QueryExecutionId": query},
                )
        assert run_athena(athena, "coinstream", "coinstream", statements, delay=0.01) == ["q0", "q1"]
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q9"})
        stub.add_response(
            "get_query_execution",
            {"QueryExecution": {"Status": {"State": "FAILED", "StateChangeReason": "line 1:8: mismatched input"}}},
        )
        with pytest.raises(FatalError, match="Athena refused `CREATE OR REPLACE VIEW a AS ...`: line 1:8"):
            run_athena(athena, "coinstream", "coinstream", statements[:1], delay=0.01)


def test_newest_lake_row_per_table_in_one_athena_query() -> None:
    athena = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    described = {"AthenaWorkGroup": "coinstream", "LakeDatabase": "coinstream", "Warehouse": "iceberg"}
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q1"})
        stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}})
        header = {"Data": [{"VarCharValue": "_col0"}, {"VarCharValue": "_col1"}]}
        rows = [
            {"Data": [{"VarCharValue": "raw_candles"}, {"VarCharValue": "2026-11-29 12:00:00.000"}]},
            {"Data": [{"VarCharValue": "raw_posts"}, {}]},
        ]
        stub.add_response("get_query_results", {"ResultSet": {"Rows": [header, *rows]}}, {"QueryExecutionId": "q1"})
        found = newest_lake_rows(athena, described, ["raw_candles", "raw_posts"], delay=0.01)
    assert found == {"raw_candles": "2026-11-29 12:00:00.000", "raw_posts": None}


def test_doctor_looks_for_arrivals_where_firehose_writes_an_iceberg_tables_files() -> None:
    resources = render(pipeline(), BASE, "iceberg")["Resources"]
    destinations = {
        r["Properties"]["DeliveryStreamName"]: r["Properties"]["IcebergDestinationConfiguration"]
        for r in resources.values()
        if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"
    }
    locations = {
        r["Properties"]["TableInput"]["Name"]: r["Properties"]["TableInput"]["StorageDescriptor"]["Location"]
        for r in resources.values()
        if r["Type"] == "AWS::Glue::Table"
    }
    for file in sorted((REPO_ROOT / "firehose_config").glob("*.json")):
        definition = json.loads(file.read_text())
        table = definition["RedshiftDestinationConfiguration"]["CopyCommand"]["DataTableName"]
        # doctor lists s3://<bucket>/iceberg/<table>/data/ for the newest arrival: the table's own location
        assert locations[table] == {"Fn::Sub": f"s3://${{LandingBucket}}/iceberg/{table}"}
        backup = backup_configuration(definition)  # the failed rows' backup, where Firehose puts it
        written = destinations[definition["DeliveryStreamName"]]["S3Configuration"]
        assert (written["Prefix"], written["ErrorOutputPrefix"]) == (backup["Prefix"], backup["ErrorOutputPrefix"])
    landing_only = {"RedshiftDestinationConfiguration": {"S3Configuration": {"Prefix": "firehose/x/"}}}
    assert backup_configuration(landing_only) == {"Prefix": "firehose/x/"}


def test_the_estimate_prices_exactly_the_hosts_the_stack_creates() -> None:
    hosts = json.loads((REPO_ROOT / "deploy" / "hosts.json").read_text())
    groups = [r for r in hosts["Resources"].values() if r["Type"] == "AWS::AutoScaling::AutoScalingGroup"]
    defaults = hosts["Parameters"]
    per_group = [g["Properties"]["DesiredCapacity"] for g in groups]
    assert per_group == [1, {"Ref": "WorkerCount"}, {"Ref": "WorkerCount"}]  # a producer, then one group per app
    traffic = Traffic()
    assert (traffic.workers_per_app, traffic.instance_type) == (
        defaults["WorkerCount"]["Default"],
        defaults["HostInstanceType"]["Default"],
    )
    assert traffic.consumer_apps == len(DEPLOYED_APPS) == len(groups) - 1
    lines = {item: basis for item, basis, _ in estimate(pipeline(), traffic, "us-east-1").lines}
    assert lines["EC2 hosts"].startswith("3 x t4g.small") and lines["Public IPv4 (hosts)"].startswith("3 x")
    two = {item: basis for item, basis, _ in estimate(pipeline(), Traffic(workers_per_app=2), "us-east-1").lines}
    assert two["EC2 hosts"].startswith("5 x t4g.small")


def test_the_x_token_is_read_from_parameter_store_at_run_time() -> None:
    import boto3
    from moto import mock_aws

    from coinstream.config import Settings

    with mock_aws():
        ssm = boto3.client("ssm", region_name="eu-west-1")
        ssm.put_parameter(Name="/coinstream/x-token", Value="token-123\n", Type="SecureString")
        settings = Settings(target="aws", region="eu-west-1", x_bearer_token_parameter="/coinstream/x-token")
        assert x_token(settings).get_secret_value() == "token-123"
        missing = Settings(target="aws", region="eu-west-1", x_bearer_token_parameter="/coinstream/none")
        with pytest.raises(FatalError, match="COINSTREAM_X_BEARER_TOKEN_PARAMETER=/coinstream/none: no such parameter"):
            x_token(missing)


def test_the_schema_goes_through_the_data_api_in_one_transaction_and_a_refusal_names_the_statement() -> None:
    """`deploy --apply` ends with redshift/*.sql as written, one BatchExecuteStatement (Stubber: moto's Data API
    never finishes a statement); every statement can run again."""
    from operate.lifecycle import apply_schema, schema_statements

    data = boto3.client("redshift-data", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    described = {
        "RedshiftSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin-AbCdEf",
        "Warehouse": "provisioned",
        "RedshiftCluster": "coinstream-cluster",
    }
    statements = schema_statements(REPO_ROOT / "redshift")
    sqls = [sql for _, sql in statements]
    assert sqls[0].startswith("CREATE TABLE IF NOT EXISTS raw_candles") and sqls[-1].startswith(
        "CREATE OR REPLACE VIEW minute_metrics"
    )
    again = ("IF NOT EXISTS", "IF EXISTS", "OR REPLACE", "WHERE NOT EXISTS")  # each one is safe to run again
    assert all(any(word in sql for word in again) for sql in sqls)
    assert not any(sql.rstrip().endswith(";") or sql.lstrip().startswith("--") for sql in sqls)
    target = {
        "Database": "coinstream",
        "SecretArn": described["RedshiftSecretArn"],
        "ClusterIdentifier": "coinstream-cluster",
    }
    batch = "00000000-0000-0000-0000-000000000001"
    with Stubber(data) as d:
        d.add_response("batch_execute_statement", {"Id": batch}, {"Sqls": sqls, **target})
        d.add_response("describe_statement", {"Id": batch, "Status": "STARTED"}, {"Id": batch})
        d.add_response("describe_statement", {"Id": batch, "Status": "FINISHED"}, {"Id": batch})
        assert apply_schema(data, described, REPO_ROOT / "redshift", delay=0.01) == len(sqls)

        d.add_response("batch_execute_statement", {"Id": batch}, {"Sqls": sqls, **target})
        failed = [{"Id": f"{batch}:{n + 1}", "Status": "FINISHED" if n < 4 else "FAILED"} for n in range(5)]
        d.add_response(
            "describe_statement",
            {"Id": batch, "Status": "FAILED", "Error": 'ERROR: column "x" does not exist', "SubStatements": failed},
            {"Id": batch},
        )
        with pytest.raises(FatalError) as refused:
            apply_schema(data, described, REPO_ROOT / "redshift", delay=0.01)
    name, sql = statements[4]
    assert str(refused.value) == (
        f'Redshift refused {name}\'s `{sql.splitlines()[0]}`: ERROR: column "x" does not exist; nothing of the '
        "schema was applied (one transaction); fix it and run `coinstream deploy --schema`"
    )


def test_firehose_reaches_redshift_from_its_published_block_in_each_of_37_regions(tmp_path: Path) -> None:
    from operate.deploy import firehose_cidrs

    as_of, cidrs = firehose_cidrs(REPO_ROOT / "deploy")
    assert as_of == "2026-12-04" and len(cidrs) == 37 and {"ca-west-1", "ap-southeast-5", "mx-central-1"} <= set(cidrs)
    assert all(c.endswith("/27") for c in cidrs.values())
    template = render(pipeline(), REPO_ROOT / "deploy" / "base.json")
    assert template["Mappings"]["FirehoseCidr"] == {r: {"Cidr": c} for r, c in cidrs.items()}
    env = {**os.environ, "COINSTREAM_STATE_DIR": str(tmp_path)}
    listed = subprocess.run(
        [sys.executable, "-m", "operate", "deploy", "--check", "--region", "ap-northeast-2"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    unlisted = subprocess.run(
        [sys.executable, "-m", "operate", "deploy", "--check", "--region", "eu-west-9"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert unlisted.returncode == 1 and len(unlisted.stderr.strip().splitlines()) == 1
    assert "Firehose publishes no Redshift CIDR for eu-west-9" in unlisted.stderr and "Traceback" not in unlisted.stderr


def test_load_errors_are_looked_for_where_the_warehouse_keeps_them() -> None:
    """On Redshift Serverless STL_LOAD_ERRORS holds nothing: the alarm and doctor name SYS_LOAD_ERROR_DETAIL there,
    STL_LOAD_ERRORS on a provisioned cluster."""
    from operate.deploy import load_errors_table

    assert load_errors_table("serverless") == "SYS_LOAD_ERROR_DETAIL"
    assert load_errors_table("provisioned") == "STL_LOAD_ERRORS"
    template = render(pipeline(), BASE)
    alarms = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    copies = [a["Properties"]["AlarmDescription"] for a in alarms if "COPY into" in json.dumps(a)]
    assert copies, "an alarm per delivery stream's COPY"
    for described in copies:
        condition, serverless, provisioned = described["Fn::If"]
        assert condition == "Serverless" and "SYS_LOAD_ERROR_DETAIL" in serverless
        assert "STL_LOAD_ERRORS" in provisioned and "SYS_LOAD_ERROR_DETAIL" not in provisioned


@pytest.mark.parametrize("warehouse", ["redshift", "iceberg"])
def test_every_arn_carries_the_stacks_partition(warehouse: str) -> None:
    """`arn:aws:` is wrong in China (aws-cn) and GovCloud (aws-us-gov), regions the region check accepts: every
    ARN the stack writes takes ${AWS::Partition}."""
    text = json.dumps(render(pipeline(), BASE, warehouse))
    assert "arn:aws:" not in text
    assert "arn:${Partition}:s3:::${Bucket}" in text and '"Partition": {"Ref": "AWS::Partition"}' in text


def test_every_host_role_may_list_what_its_bootstrap_copies_recursively() -> None:
    """`aws s3 cp --recursive` and `aws s3 sync` list the prefix first (ListObjectsV2: s3:ListBucket on the bucket);
    s3:GetObject alone gets AccessDenied, the bootstrap waits out its tries and no worker ever runs (issue 37).
    Each role whose host runs deploy/bootstrap.sh may list its artifacts (the producer its state too)."""
    import re as regex

    bootstrap = (REPO_ROOT / "deploy" / "bootstrap.sh").read_text()
    listed = set(regex.findall(r"aws s3 (?:cp --recursive|sync)[^\n]*?\$(\w+)(?:_url)?/", bootstrap))
    assert listed, "the bootstrap copies prefixes recursively"
    template = render(pipeline(), BASE)
    prefixes = {"artifacts": "artifacts/", "state": "state/producer/"}
    for role in ("ProducerRole", "ConsumerRole"):
        granted = [
            s
            for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
            for s in r["Properties"]["PolicyDocument"]["Statement"]
            if "s3:ListBucket" in s["Action"]
        ]
        allowed = [p for s in granted for p in s.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [])]
        needs = ["artifacts"] + (["state"] if role == "ProducerRole" else [])
        for what in needs:
            assert any(prefixes[what].startswith(p.rstrip("*")) for p in allowed), f"{role} cannot list {what}/"


def test_destroy_says_what_the_backup_holds_on_each_warehouse() -> None:
    """Redshift's Firehose backs up every record; Iceberg's destination only the failed ones (FailedDataOnly)."""
    from moto import mock_aws

    from operate.lifecycle import kept_after_destroy

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="landing")
        redshift = kept_after_destroy(s3, "cs", {"LandingBucket": "landing", "Warehouse": "serverless"})
        iceberg = kept_after_destroy(s3, "cs", {"LandingBucket": "landing", "Warehouse": "iceberg"})
    assert "every record ever delivered" in redshift[0]
    assert "every record" not in iceberg[0] and "the records Firehose failed to write" in iceberg[0]


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_every_host_group_waits_for_its_hosts_to_say_they_are_ready(warehouse: str) -> None:
    """Without a CreationPolicy CloudFormation calls a group complete once its instances exist, whatever their
    bootstrap did; a rolling update with MinInstancesInService 0 stopped the only host before its replacement
    served. Each group now waits for every host's signal, keeps its serving hosts until the replacement
    signalled, and has room for that replacement; each launch template tells its bootstrap which group to signal."""
    resources = render(pipeline(), BASE, warehouse)["Resources"]
    groups = {k: v for k, v in resources.items() if v["Type"] == "AWS::AutoScaling::AutoScalingGroup"}
    assert len(groups) == 3
    worker_count = render(pipeline(), BASE, warehouse)["Parameters"]["WorkerCount"]
    for name, group in groups.items():
        desired = group["Properties"]["DesiredCapacity"]
        assert group["CreationPolicy"]["ResourceSignal"]["Count"] == desired
        rolling = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
        assert rolling["WaitOnResourceSignals"] is True and rolling["MinInstancesInService"] == desired
        assert rolling["MaxBatchSize"] == 1 and rolling["PauseTime"] != "PT0S"
        most = desired if isinstance(desired, int) else worker_count["MaxValue"]
        assert group["Properties"]["MaxSize"] > most, f"{name}: no room for a replacement beside {most} hosts"
        template = group["Properties"]["LaunchTemplate"]["LaunchTemplateId"]["Ref"]
        data = json.dumps(resources[template]["Properties"]["LaunchTemplateData"]["UserData"])
        assert f"export COINSTREAM_SIGNAL_RESOURCE={name}\\n" in data, name


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_only_the_producer_may_read_the_x_token(warehouse: str) -> None:
    """AmazonSSMManagedInstanceCore allows ssm:GetParameter(s) on every parameter: a worker host could read
    /coinstream/x-token. The hosts' Session Manager policy is that policy without them; only the producer's own
    policy names the token's parameters."""
    resources = render(pipeline(), BASE, warehouse)["Resources"]
    assert "policy/AmazonSSMManagedInstanceCore" not in json.dumps(resources)

    def actions(role: str) -> list[tuple[str, Any]]:
        props = resources[role]["Properties"]
        docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        docs += [resources[m["Ref"]]["Properties"]["PolicyDocument"] for m in props.get("ManagedPolicyArns", [])]
        docs += [
            r["Properties"]["PolicyDocument"]
            for r in resources.values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
        ]
        found = []
        for doc in docs:
            for statement in doc["Statement"]:
                acts = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                found += [(a, statement["Resource"]) for a in acts]
        return found

    reads = {"ssm:GetParameter", "ssm:GetParameters", "ssm:*", "*"}
    assert [a for a, _ in actions("ConsumerRole") if a in reads] == []
    producer = [(a, res) for a, res in actions("ProducerRole") if a in reads]
    assert producer and all("parameter/coinstream/" in json.dumps(res) for _, res in producer)


def documented_exceptions() -> set[tuple[str, str, str]]:
    """docs/aws.md's table of what checkov flags and the stack keeps: (resource, check, reason)."""
    page = (REPO_ROOT / "docs" / "aws.md").read_text().split("## What the scanners say")[1].split("\n## ")[0]
    rows = [line.split(" | ") for line in page.splitlines() if line.startswith("| `")]
    return {(r[0].strip("| `"), r[1].strip(), r[2].rstrip(" |")) for r in rows}


def test_the_scanners_exceptions_are_the_documented_ones_and_checkov_agrees() -> None:
    """Each check the stack keeps failing on purpose is written on its resource with the reason, listed in the
    docs, and is all checkov reports: nothing failed, nothing skipped that the docs do not give a reason for."""
    written = set()
    for warehouse in WAREHOUSES:
        for name, resource in render(pipeline(), BASE, warehouse)["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                written.add((name, skip["id"], skip["comment"]))
    assert written and written == documented_exceptions()
    checkov = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
    if not checkov.exists():
        if os.environ.get("CI"):
            pytest.fail("checkov is not installed: `make lint` installs it (.tools/checkov)")
        pytest.skip("checkov is installed by `make lint`")
    for warehouse in WAREHOUSES:
        done = subprocess.run(
            [
                str(checkov),
                "--skip-download",
                "--framework",
                "cloudformation",
                "-o",
                "json",
                "-f",
                str(committed_path(pipeline(), warehouse)),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        report = json.loads(done.stdout)["results"]
        assert report["failed_checks"] == [], [(c["check_id"], c["resource"]) for c in report["failed_checks"]]
        skipped = {(c["resource"].split(".", 1)[1], c["check_id"]) for c in report["skipped_checks"]}
        assert skipped <= {(name, check) for name, check, _ in written}


def test_the_docs_say_what_each_role_may_do_as_its_policies_do() -> None:
    """docs/aws.md's "Who may do what" names each role's actions; the policies of both templates grant exactly those."""
    import re as regex

    page = (REPO_ROOT / "docs" / "aws.md").read_text().split("## Who may do what")[1].split("\n## ")[0]
    said = {
        row.split("`")[1]: set(regex.findall(r"`([a-z0-9]+:[A-Za-z]+)`", row.split(" | ")[1]))
        for row in page.splitlines()
        if row.startswith("| `")
    }
    granted: dict[str, set[str]] = {}
    for warehouse in WAREHOUSES:
        resources = render(pipeline(), BASE, warehouse)["Resources"]
        for name, resource in resources.items():
            if resource["Type"] == "AWS::IAM::Role":
                docs = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
                docs += [
                    r["Properties"]["PolicyDocument"]
                    for r in resources.values()
                    if r["Type"] == "AWS::IAM::Policy" and {"Ref": name} in r["Properties"]["Roles"]
                ]
                for doc in docs:
                    for statement in doc["Statement"]:
                        actions = (
                            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                        )
                        granted.setdefault(name, set()).update(actions)
    assert {k: v for k, v in said.items() if k != "SessionManagerPolicy"} == granted
    session = render(pipeline(), BASE)["Resources"]["SessionManagerPolicy"]["Properties"]["PolicyDocument"]
    agent = {a for s in session["Statement"] for a in s["Action"]}
    assert not agent & {"ssm:GetParameter", "ssm:GetParameters"} and said["SessionManagerPolicy"] == set()
