"""AWS clients that point at the local stack or at AWS; only endpoints and credentials differ."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from pydantic import SecretStr

from coinstream.config import Pipeline, Settings
from coinstream.errors import NO_CREDENTIALS, CoinstreamError, FatalError, NoCredentials, RefusedError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client

# The local stack accepts any credentials; these never leave the machine.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
_ENV_NAMES = {"kinesis": "KINESIS", "dynamodb": "DYNAMODB", "s3": "S3", "firehose": "FIREHOSE"}


@overload
def client(service: Literal["kinesis"], settings: Settings) -> KinesisClient: ...
@overload
def client(service: Literal["firehose"], settings: Settings) -> FirehoseClient: ...
@overload
def client(service: Literal["s3"], settings: Settings) -> S3Client: ...
@overload
def client(service: Literal["dynamodb"], settings: Settings) -> DynamoDBClient: ...
@overload
def client(service: str, settings: Settings) -> Any: ...
def client(service: str, settings: Settings) -> Any:
    """A boto3 client for `service`; on the local stack with its endpoint and dummy credentials."""
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
    if settings.target == "local":
        return boto3.client(
            service,
            region_name=settings.region,
            endpoint_url=settings.endpoint(service),
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=config,
        )
    return boto3.client(service, region_name=settings.region, endpoint_url=settings.endpoint(service), config=config)


def secure_parameter(settings: Settings, name: str, setting: str) -> str:
    """An SSM Parameter Store value, decrypted (a SecureString: the hosts' secrets); FatalError naming `setting`."""
    try:
        answer = client("ssm", settings).get_parameter(Name=name, WithDecryption=True)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise FatalError(
                f"{setting}={name}: no such parameter in {settings.region}; create it with `aws ssm put-parameter "
                f"--type SecureString --name {name} --value ...`"
            ) from None
        raise classify(exc, f"reading the parameter {name} ({setting})") from None
    except Exception as exc:
        raise classify(exc, f"reading the parameter {name} ({setting})") from None
    return str(answer["Parameter"]["Value"]).strip()


#: Stack outputs that name what pipeline.toml gives only the stem of (the bucket, unique per account and region
#: on AWS): `deployed` sets the stream, bucket and live table from them.
STACK_NAMES = ("StreamName", "LandingBucket", "LiveTable")


def stack_outputs(settings: Settings) -> dict[str, str]:
    """The outputs of the deployed CloudFormation stack (COINSTREAM_STACK_NAME in the settings' region)."""
    try:
        stacks = client("cloudformation", settings).describe_stacks(StackName=settings.stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in exc.response.get("Error", {}).get("Message", ""):
            raise FatalError(
                f"no CloudFormation stack {settings.stack_name!r} in {settings.region}: deploy it with "
                "`coinstream deploy --apply`, or point COINSTREAM_STACK_NAME / AWS_REGION at the one you deployed"
            ) from None
        raise classify(exc, f"reading the stack {settings.stack_name}") from None
    except Exception as exc:
        raise classify(exc, f"reading the stack {settings.stack_name}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def deployed(settings: Settings, pipeline: Pipeline) -> Pipeline:
    """The pipeline with the names AWS gave its resources (read from the stack's outputs); unchanged locally."""
    if settings.target != "aws":
        return pipeline
    outputs = stack_outputs(settings)
    missing = sorted(set(STACK_NAMES) - set(outputs))
    if missing:
        raise FatalError(
            f"stack {settings.stack_name!r} has no output {', '.join(missing)}: an older coinstream deployed it; "
            "update it with `coinstream deploy --apply`"
        )
    return dataclasses.replace(
        pipeline,
        stream_name=outputs["StreamName"],
        bucket=outputs["LandingBucket"],
        live_table=outputs["LiveTable"],
    )


def child_env(settings: Settings) -> dict[str, str]:
    """Environment for a child process (the KCL daemon and its record processors)."""
    env = dict(os.environ)
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = settings.region
    if settings.target == "local":
        env.update(LOCAL_CREDENTIALS)
        for service, name in _ENV_NAMES.items():
            env[f"AWS_ENDPOINT_URL_{name}"] = str(settings.endpoint(service))
    for field in Settings.model_fields:
        name, value = f"COINSTREAM_{field.upper()}", getattr(settings, field)
        if value is None:
            env.pop(name, None)
        elif isinstance(value, SecretStr):
            continue  # a secret stays where the user put it; the children need none
        else:
            # a false or zero setting must arrive as itself (`str(v or "")` turned 0 and False into "")
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


# Error codes worth a retry: throttling and service-side trouble.
_TRANSIENT_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
    "KMSThrottlingException",
    "LimitExceededException",
    "RequestTimeout",
    "SlowDown",
}


# Error codes that are about the request's content, not the service or the destination: the same
# content will be refused again, so the records in it are dead-lettered with the service's message.
_REFUSED_CODES = {"InvalidArgumentException", "ValidationException", "SerializationException"}


def _where_to_look() -> str:
    """The next step for an unreachable or missing resource, on the target this process runs against."""
    if os.environ.get("COINSTREAM_TARGET", "local").lower() == "aws":
        return "check the region, credentials and the stack (`coinstream doctor`, `coinstream deploy --status`)"
    return "is `coinstream local up` running? (pipeline.toml names the resources)"


def classify(exc: Exception, what: str) -> CoinstreamError:
    """Map a botocore exception to transient (retry) or fatal (stop, say why): the one place that does."""
    if isinstance(exc, CoinstreamError):
        return exc
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError):
        return TransientError(f"{what}: cannot reach the endpoint ({exc}); {_where_to_look()}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return NoCredentials(f"{what}: {NO_CREDENTIALS}")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _TRANSIENT_CODES or status >= 500:
            return TransientError(f"{what}: {code or status}: {message}")
        if code in _REFUSED_CODES:
            return RefusedError(f"{what}: {code}: {message}")
        if code == "ResourceNotFoundException":
            return FatalError(f"{what}: {message or 'not found'}; {_where_to_look()}")
        return FatalError(f"{what}: {code}: {message}")
    return TransientError(f"{what}: {type(exc).__name__}: {exc}")


def run_athena(
    athena: Any, workgroup: str, database: str, statements: list[str], *, delay: float = 1.0, timeout: float = 300.0
) -> list[str]:
    """Run statements one after another in the stack's Athena workgroup and database (the workgroup enforces its
    results location and scan limit); the query ids. A failed one stops the run, named with Athena's reason."""
    ids = []
    for sql in statements:
        query = str(
            athena.start_query_execution(
                QueryString=sql, WorkGroup=workgroup, QueryExecutionContext={"Database": database}
            )["QueryExecutionId"]
        )
        for _ in range(max(1, int(timeout / delay))):
            status = athena.get_query_execution(QueryExecutionId=query)["QueryExecution"]["Status"]
            if status["State"] in {"SUCCEEDED", "FAILED", "CANCELLED"}:
                break
            time.sleep(delay)
        else:
            raise FatalError(f"Athena gave no answer to `{sql[:60]}...` in {timeout:g} s (query {query})")
        if status["State"] != "SUCCEEDED":
            raise FatalError(
                f"Athena refused `{' '.join(sql.split()[:6])} ...`: {status.get('StateChangeReason', status['State'])}"
            )
        ids.append(query)
    return ids
