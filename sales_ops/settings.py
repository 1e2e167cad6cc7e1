"""One place for where the pipeline lives: target, endpoint, names, and the boto3 clients.

`local` (default) talks to the embedded AWS on 127.0.0.1; `aws` talks to a deployed stack whose
outputs supply the names (`settings_from_stack`: every name in `Settings` comes from the stack's
Outputs, so `SALES_OPS_TARGET=aws` needs nothing else configured). Everything else in the project
asks `Settings` instead of reading the environment itself.

Reading the stack lives here, not in sales_ops/deploy/ (which deploys it and re-exports these
names): `Settings.from_env` needs it, and the deploy needs `Settings`. AWS failures a user can fix
(no credentials, rejected credentials, missing stack) surface as `SettingsError` (or its subclass
`StackError`) with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.utils import parse_timestamp
from dateutil.tz import tzutc

from sales_ops.botocore_fast import (
    CompiledParserFactory,
    dedupe_search_paths,
    memoize_user_agent,
    share_data_loader,
)

TARGETS = ("local", "aws")

# The checkout: infra/, lambdas/ and scripts/ live beside the package.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
HANDLER_PATH = PROJECT_ROOT / "lambdas" / "firehose_transform" / "handler.py"

LOCAL_ACCOUNT = "123456789012"
LOCAL_REGION = "us-east-1"
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 4566
LOCAL_CREDENTIALS = ("testing", "testing")

RAW_PREFIX = "raw/orders/"
ERROR_PREFIX = "errors/processing-failed/"
CURATED_PREFIX = "curated/"
ATHENA_RESULTS_PREFIX = "athena-results/"
# Pidfiles, logs, checkpoints, the emulator snapshot: anchored to the checkout, not to the working
# directory (run from elsewhere, a relative dir found no emulator and left a stray .sales-ops/).
DEFAULT_STATE_DIR = PROJECT_ROOT / ".sales-ops"
# Athena cancels a query of the stack's workgroup that scans more than this (BytesScannedCutoffPerQuery,
# the template's AthenaBytesScannedCutoff, default 1 GiB); the local engine enforces the same figure.
DEFAULT_SCAN_CUTOFF = 1024**3
MIN_SCAN_CUTOFF = 10 * 1024**2  # Athena's minimum for the workgroup setting
SCAN_CUTOFF_ENV = "SALES_OPS_SCAN_CUTOFF"
# Compaction and the rollups run at most every this many minutes (docs/design.md §2.5, "Cadence"):
# each cycle bills Athena's 10 MB minimum per statement, so the cadence sets the floor of the bill;
# orders_live answers in real time in between. Read from the environment on both targets.
CADENCE_ENV = "SALES_OPS_CADENCE_MINUTES"
DEFAULT_CADENCE_MINUTES = 5
CADENCE_CHOICES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)  # divisors of an hour: a */N cron
# How Firehose compresses raw/ and errors/ objects: the template's RawCompression on aws (GZIP by
# default), this variable locally, read by provisioning into the local delivery stream's
# CompressionFormat. Readers never rely on it: they recognise gzip by its magic bytes.
RAW_COMPRESSION_ENV = "SALES_OPS_RAW_COMPRESSION"
RAW_COMPRESSIONS = ("GZIP", "UNCOMPRESSED")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message says which and how to fix it."""


def target_from_env(env: Mapping[str, str] | None = None, target: str | None = None) -> str:
    """`target`, else SALES_OPS_TARGET, else local; an unknown name is a SettingsError."""
    values = os.environ if env is None else env
    name = (target or values.get("SALES_OPS_TARGET") or "local").strip().lower()
    if name not in TARGETS:
        raise SettingsError(f"unknown target {name!r}: choose one of {', '.join(TARGETS)}")
    return name


@dataclass(frozen=True)
class Settings:
    target: str = "local"
    region: str = LOCAL_REGION
    account: str = LOCAL_ACCOUNT
    endpoint_url: str | None = f"http://{LOCAL_HOST}:{LOCAL_PORT}"
    bucket: str = "sales-ops-local"
    table: str = "orders"
    kinesis_stream: str = "orders-cdc"
    delivery_stream: str = "orders-raw"
    pipe: str = "orders-cdc-pipe"
    transform_function: str = "orders-firehose-transform"
    database: str = "sales_ops"
    crawler: str = "sales-ops-raw-orders"
    workgroup: str = "sales-ops"
    stack_name: str = "sales-ops"
    alarm_topic_arn: str | None = None  # aws: the stack's AlarmTopicArn output, where alerts also go
    state_dir: Path = DEFAULT_STATE_DIR
    scan_cutoff_bytes: int = DEFAULT_SCAN_CUTOFF  # aws: the stack's AthenaBytesScannedCutoff
    raw_compression: str = "GZIP"  # local: the delivery stream's CompressionFormat (RAW_COMPRESSION_ENV)

    @classmethod
    def from_env(cls, target: str | None = None, env: dict[str, str] | None = None) -> Settings:
        """Settings for `target` (or SALES_OPS_TARGET), with SALES_OPS_* overrides from `env`."""
        env = dict(os.environ if env is None else env)
        target = target_from_env(env, target)
        state_dir = Path(env.get("SALES_OPS_STATE_DIR") or DEFAULT_STATE_DIR).expanduser().resolve()
        if target == "local":
            settings = cls(
                target="local",
                state_dir=state_dir,
                scan_cutoff_bytes=scan_cutoff_from_env(env),
                raw_compression=raw_compression_from_env(env),
            )
            if "SALES_OPS_ENDPOINT" in env:
                settings = replace(settings, endpoint_url=env["SALES_OPS_ENDPOINT"])
            return settings
        return settings_from_stack(
            stack_name=env.get("SALES_OPS_STACK", "sales-ops"),
            region=default_region(env),
            state_dir=state_dir,
        )

    def to_env(self) -> dict[str, str]:
        """The SALES_OPS_* variables that make a child process (worker, Dagster) see these settings."""
        env = {"SALES_OPS_TARGET": self.target, "SALES_OPS_STATE_DIR": str(self.state_dir)}
        if self.is_local:
            env["SALES_OPS_ENDPOINT"] = self.endpoint_url or ""
            env[SCAN_CUTOFF_ENV] = str(self.scan_cutoff_bytes)
            env[RAW_COMPRESSION_ENV] = self.raw_compression
        else:
            env["SALES_OPS_STACK"] = self.stack_name
            env["AWS_REGION"] = self.region
        return env

    def resource_config(self) -> dict[str, str | None]:
        """The same, as the fields of the Dagster `PipelineResource`."""
        return {"target": self.target, "endpoint_url": self.endpoint_url, "state_dir": str(self.state_dir)}

    @property
    def is_local(self) -> bool:
        return self.target == "local"

    @property
    def port(self) -> int:
        """The emulator's port (local target only)."""
        from urllib.parse import urlparse

        return urlparse(self.endpoint_url or "").port or LOCAL_PORT

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client for `service` on this target (cached per service and config); `config`
        goes to botocore's Config (standard retries, 5 attempts, unless it says `retries`)."""
        key = (service, repr(sorted(config.items())))  # repr: values may be dicts (retries)
        cache = self._clients
        if key not in cache:
            cache[key] = self._session.client(
                service,
                # Set on aws only by tests that run the aws code paths against the emulator.
                endpoint_url=self.endpoint_url,
                config=Config(**{"retries": {"max_attempts": 5, "mode": "standard"}, **config}),
            )
        return cache[key]

    @cached_property
    def _clients(self) -> dict:
        return {}

    @cached_property
    def _session(self) -> boto3.session.Session:
        if self.is_local:
            key, secret = LOCAL_CREDENTIALS
            return _boto_session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=self.region)
        return _boto_session(region_name=self.region)

    # Paths under the state dir: pidfiles, logs, checkpoints and the emulator snapshot.
    def state_path(self, *parts: str) -> Path:
        path = self.state_dir.joinpath(*parts)
        # Owner only (0700): the state dir holds the emulator's whole database (docs/design.md §5).
        for directory in [
            *reversed(path.parent.relative_to(self.state_dir).parents),
            path.parent.relative_to(self.state_dir),
        ]:
            (self.state_dir / directory).mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def s3_uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"


def scan_cutoff_from_env(env: Mapping[str, str]) -> int:
    """The local engine's per-query scan cutoff: SALES_OPS_SCAN_CUTOFF bytes, else the template's."""
    text = (env.get(SCAN_CUTOFF_ENV) or "").strip()
    if not text:
        return DEFAULT_SCAN_CUTOFF
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < MIN_SCAN_CUTOFF:
        raise SettingsError(
            f"{SCAN_CUTOFF_ENV}={text!r}: give a whole number of bytes, at least {MIN_SCAN_CUTOFF} "
            "(Athena's minimum for a workgroup's cutoff)"
        )
    return value


def cadence_minutes_from_env(env: Mapping[str, str]) -> int:
    """SALES_OPS_CADENCE_MINUTES, a divisor of 60 (a `*/N` cron ticks evenly), else the default."""
    text = (env.get(CADENCE_ENV) or "").strip()
    if not text:
        return DEFAULT_CADENCE_MINUTES
    if not text.isdigit() or int(text) not in CADENCE_CHOICES:
        choices = ", ".join(str(c) for c in CADENCE_CHOICES)
        raise SettingsError(f"{CADENCE_ENV}={text!r}: give minutes that divide an hour: one of {choices}")
    return int(text)


def cadence_cron(minutes: int) -> str:
    """The cron of the cadence: every `minutes` past each hour."""
    return "0 * * * *" if minutes == 60 else f"*/{minutes} * * * *"


def raw_compression_from_env(env: Mapping[str, str]) -> str:
    """The local delivery stream's CompressionFormat: SALES_OPS_RAW_COMPRESSION, else GZIP."""
    text = (env.get(RAW_COMPRESSION_ENV) or "GZIP").strip().upper()
    if text not in RAW_COMPRESSIONS:
        raise SettingsError(f"{RAW_COMPRESSION_ENV}={text!r}: choose one of {', '.join(RAW_COMPRESSIONS)}")
    return text


def error_code(exc: ClientError) -> str:
    """The AWS error code of a boto3 ClientError ("" when there is none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


# --- the aws target: the deployed stack's outputs, and AWS errors said clearly -----------------
ClientFactory = Callable[[str], Any]

READY_PREFIXES = ("CREATE_COMPLETE", "UPDATE_", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE")
CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
}
ALARM_TOPIC_OUTPUT = "AlarmTopicArn"
SCAN_CUTOFF_PARAMETER = "AthenaBytesScannedCutoff"
# Settings field -> stack output that names it.
SETTINGS_OUTPUTS = {
    "bucket": "BucketName",
    "table": "TableName",
    "kinesis_stream": "KinesisStreamName",
    "delivery_stream": "DeliveryStreamName",
    "pipe": "PipeName",
    "transform_function": "TransformFunctionName",
    "database": "GlueDatabaseName",
    "crawler": "CrawlerName",
    "workgroup": "AthenaWorkGroupName",
}


class StackError(SettingsError):
    """Deploying or destroying the stack failed; the message says why and what to do."""


# S3's XML responses give each object's LastModified as ISO-8601 UTC (2026-12-04T11:12:37.000Z).
_ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z")
_UTC = tzutc()


def response_timestamp(value: Any) -> datetime:
    """botocore's parse_timestamp, without dateutil's general parser for ISO-8601 UTC (~75 µs a
    value: a listing of a thousand objects spent a tenth of a second on its LastModified alone).
    The same instant, in tzutc() (dateutil says tzlocal() instead where the machine's zone is
    UTC). JSON protocols' epoch seconds (Glue's CreationTime, stream records) likewise, without
    tzlocal()'s conversion (~60 µs a value: two per Glue partition); any other form goes to
    botocore's."""
    if isinstance(value, str) and _ISO_UTC.fullmatch(value):
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=_UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, _UTC)
        except (OverflowError, ValueError, OSError):
            pass  # out of range: botocore's own error
    return parse_timestamp(value)


def _boto_session(**kwargs: Any) -> boto3.session.Session:
    """A boto3 session whose clients parse response timestamps with `response_timestamp`, and
    JSON-protocol responses with shape walks compiled once, a memoized User-Agent header's parts
    and the process's one data loader (sales_ops/botocore_fast.py)."""
    memoize_user_agent()
    core = botocore.session.get_session()
    share_data_loader(core)
    parsers = CompiledParserFactory()
    parsers.set_parser_defaults(timestamp_parser=response_timestamp)
    core.register_component("response_parser_factory", parsers)
    session = boto3.session.Session(botocore_session=core, **kwargs)
    dedupe_search_paths()
    return session


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


def describe_stack(stack_name: str, clients: ClientFactory) -> dict[str, Any] | None:
    """The stack's description, or None when no stack of that name exists."""
    try:
        return clients("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise


def stack_outputs(stack: dict[str, Any]) -> dict[str, str]:
    """OutputKey -> OutputValue of a described stack."""
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def settings_from_stack(
    stack_name: str, region: str, state_dir: Path, clients: ClientFactory | None = None
) -> Settings:
    """Settings for the `aws` target, read from the Outputs of the deployed stack `stack_name`."""
    with aws_errors(f"reading stack {stack_name!r} in {region}"):
        stack = describe_stack(stack_name, clients or make_clients(region))
    if stack is None:
        raise SettingsError(
            f"No CloudFormation stack {stack_name!r} in region {region}: deploy it with "
            "`sales-ops deploy`, or point SALES_OPS_STACK / AWS_REGION at the deployed one."
        )
    if not stack["StackStatus"].startswith(READY_PREFIXES):
        raise SettingsError(
            f"Stack {stack_name!r} in {region} is {stack['StackStatus']}, not ready: "
            "wait for it, or run `sales-ops deploy` again."
        )
    outputs = stack_outputs(stack)
    missing = sorted(key for key in SETTINGS_OUTPUTS.values() if key not in outputs)
    if missing:
        raise SettingsError(
            f"Stack {stack_name!r} lacks outputs {', '.join(missing)}: it was deployed from another "
            "template; run `sales-ops deploy` to update it."
        )
    names = {name: outputs[key] for name, key in SETTINGS_OUTPUTS.items()}
    known = {f.name for f in fields(Settings)}
    return Settings(
        target="aws",
        region=region,
        account=stack["StackId"].split(":")[4],
        endpoint_url=None,
        stack_name=stack_name,
        state_dir=Path(state_dir),
        # Optional: a stack deployed before the alarms has no topic; alerts then use the webhook only.
        alarm_topic_arn=outputs.get(ALARM_TOPIC_OUTPUT),
        scan_cutoff_bytes=scan_cutoff_from_stack(stack),
        **{k: v for k, v in names.items() if k in known},
    )


def scan_cutoff_from_stack(stack: dict[str, Any]) -> int:
    """The workgroup's BytesScannedCutoffPerQuery, as the stack was deployed (its parameter)."""
    values = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    try:
        return int(values[SCAN_CUTOFF_PARAMETER])
    except (KeyError, TypeError, ValueError):  # a stack from an older template: the default
        return DEFAULT_SCAN_CUTOFF
