"""Where the secrets come from: the environment, a file outside the repo, or SSM Parameter Store (on the hosts).
Never logged; only their length is ever shown."""

from __future__ import annotations

from pydantic import SecretStr

from coinstream.config import Settings
from coinstream.errors import FatalError


def x_token(settings: Settings) -> SecretStr:
    """The X bearer token from COINSTREAM_X_BEARER_TOKEN, the file COINSTREAM_X_BEARER_TOKEN_FILE names, or the SSM
    SecureString COINSTREAM_X_BEARER_TOKEN_PARAMETER names."""
    if settings.x_bearer_token is not None:
        return settings.x_bearer_token
    if settings.x_bearer_token_file is not None:
        try:
            return SecretStr(settings.x_bearer_token_file.read_text().strip())
        except OSError as exc:
            raise FatalError(f"COINSTREAM_X_BEARER_TOKEN_FILE={settings.x_bearer_token_file}: {exc.strerror}") from None
    if settings.x_bearer_token_parameter:
        from coinstream.aws import secure_parameter  # boto3 only where the token lives in AWS

        return SecretStr(
            secure_parameter(settings, settings.x_bearer_token_parameter, "COINSTREAM_X_BEARER_TOKEN_PARAMETER")
        )
    raise FatalError(
        "no X bearer token: set COINSTREAM_X_BEARER_TOKEN, COINSTREAM_X_BEARER_TOKEN_FILE to a file outside the "
        "repo that holds it, or COINSTREAM_X_BEARER_TOKEN_PARAMETER to an SSM SecureString's name"
    )
