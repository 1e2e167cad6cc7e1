"""Glue table versions (issue 21): the emulator refuses UpdateTable past a table's version limit with
ResourceNumberLimitExceededException, as Glue does past 100,000, and honours SkipArchive; the
project's catalog writes (`glue.put_table`, used for orders_live and the rollups) archive nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from sales_ops.catalog import glue
from sales_ops.local.glue_versions import DEFAULT_VERSION_LIMIT, VERSION_LIMIT_ENV, version_limit
from sales_ops.settings import Settings
from tests.harness import free_port, running_server, stack_env, stack_settings

LIMIT = 3


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An emulator of this module's own, with a table-version limit of LIMIT."""
    state = tmp_path_factory.mktemp("glue-versions")
    settings = stack_settings(state, free_port())
    cmd = [
        sys.executable,
        "-m",
        "sales_ops.local.emulator",
        "--port",
        str(settings.port),
        "--state-dir",
        str(state),
    ]
    env = {**stack_env(settings), VERSION_LIMIT_ENV: str(LIMIT)}
    with running_server("emulator", cmd, env, f"{settings.endpoint_url}/", Path(state) / "emulator.log"):
        settings.client("glue").create_database(DatabaseInput={"Name": settings.database})
        yield settings


def _table(name: str, location: str) -> dict:
    return glue.parquet_table_input(name, [("order_id", "string")], location)


def test_the_default_limit_is_glues() -> None:
    assert version_limit({}) == DEFAULT_VERSION_LIMIT == 100_000
    assert version_limit({VERSION_LIMIT_ENV: "7"}) == 7


@pytest.mark.slow  # starts an emulator of its own
def test_update_table_is_refused_past_the_version_limit(emulator: Settings) -> None:
    client = emulator.client("glue")
    glue.put_table(emulator, _table("archived", "s3://b/v=0/"))
    for i in range(1, LIMIT):  # each UpdateTable without SkipArchive archives one more version
        client.update_table(DatabaseName=emulator.database, TableInput=_table("archived", f"s3://b/v={i}/"))
    with pytest.raises(ClientError) as refused:
        client.update_table(DatabaseName=emulator.database, TableInput=_table("archived", "s3://b/v=9/"))
    assert refused.value.response["Error"]["Code"] == "ResourceNumberLimitExceededException"
    table = glue.get_table(emulator, "archived")
    assert table and table["StorageDescriptor"]["Location"] == f"s3://b/v={LIMIT - 1}/"  # unchanged


@pytest.mark.slow
def test_put_table_repoints_a_table_any_number_of_times_without_archiving(emulator: Settings) -> None:
    """What orders_live and every rollup do on each cycle: far more writes than the limit."""
    for i in range(LIMIT * 4):
        glue.put_table(emulator, _table("repointed", f"s3://b/v={i}/"))
    table = glue.get_table(emulator, "repointed")
    assert table and table["StorageDescriptor"]["Location"] == f"s3://b/v={LIMIT * 4 - 1}/"
    versions = emulator.client("glue").get_table_versions(
        DatabaseName=emulator.database, TableName="repointed"
    )
    assert len(versions["TableVersions"]) == 1
