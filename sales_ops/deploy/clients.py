"""boto3 clients for deploy/destroy, and AWS errors a user can fix turned into clear messages."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from sales_ops.settings import SettingsError, error_code

ClientFactory = Callable[[str], Any]
Progress = Callable[[str], None]


READY_PREFIXES = ("CREATE_COMPLETE", "UPDATE_", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE")
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
}


class StackError(SettingsError):
    """Deploying or destroying the stack failed; the message says why and what to do."""


def make_clients(
    region: str, session: boto3.session.Session | None = None, endpoint_url: str | None = None
) -> ClientFactory:
    """A cached service -> client factory for `region` (and `endpoint_url`, for an emulator)."""
    session = session or boto3.session.Session(region_name=region)
    config = Config(retries={"max_attempts": 5, "mode": "standard"})
    cache: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in cache:
            cache[service] = session.client(
                service, region_name=region, endpoint_url=endpoint_url, config=config
            )
        return cache[service]

    return client


def default_region(env: Mapping[str, str] | None = None) -> str:
    """AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region, else us-east-1."""
    values = os.environ if env is None else env
    region = values.get("AWS_REGION") or values.get("AWS_DEFAULT_REGION")
    if not region:
        with contextlib.suppress(BotoCoreError):
            region = boto3.session.Session().region_name
    return region or "us-east-1"


@contextlib.contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn credential and connection failures while `doing` something into a clear SettingsError."""
    try:
        yield
    except NoCredentialsError as exc:
        raise SettingsError(
            f"No AWS credentials found while {doing}. Configure them (aws configure, aws sso login, "
            "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and try again."
        ) from exc
    except ClientError as exc:
        if error_code(exc) in CREDENTIAL_CODES:
            raise SettingsError(
                f"AWS rejected the credentials while {doing} ({error_code(exc)}): refresh them "
                "(aws sso login, new session token) and try again."
            ) from exc
        raise StackError(f"AWS refused a call while {doing}: {exc}") from exc
    except BotoCoreError as exc:  # expired SSO token, unknown profile, no network, ...
        raise SettingsError(
            f"AWS call failed while {doing}: {exc}. Check your AWS credentials, profile and region."
        ) from exc


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
