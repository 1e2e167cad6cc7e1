"""Glue table versions in the emulator as Glue keeps them: `SkipArchive`, and the per-table limit.

Glue's UpdateTable archives the table's current version before updating it, unless `SkipArchive`
is true (https://docs.aws.amazon.com/glue/latest/webapi/API_UpdateTable.html), and Glue refuses
writes past 100,000 versions per table with ResourceNumberLimitExceededException ("Number of table
versions per table", https://docs.aws.amazon.com/general/latest/gr/glue.html). moto 5.2 ignores
SkipArchive and keeps every version for ever (in memory, and in every snapshot), so a catalog
write once a minute was free locally and broke on AWS after ~70 days. Applied only in the emulator
process (`install_patches`); the limit is `SALES_OPS_GLUE_TABLE_VERSIONS` (small in tests).
"""

from __future__ import annotations

import os

VERSION_LIMIT_ENV = "SALES_OPS_GLUE_TABLE_VERSIONS"
DEFAULT_VERSION_LIMIT = 100_000


def version_limit(env: dict[str, str] | None = None) -> int:
    text = (os.environ if env is None else env).get(VERSION_LIMIT_ENV, "").strip()
    return int(text) if text else DEFAULT_VERSION_LIMIT


def install(limit: int | None = None) -> None:
    """Make moto's UpdateTable honour SkipArchive and refuse past `limit` versions of a table."""
    from moto.core.responses import EmptyResult
    from moto.glue.exceptions import ResourceNumberLimitExceededException
    from moto.glue.responses import GlueResponse

    most = version_limit() if limit is None else limit

    def update_table(self: GlueResponse) -> EmptyResult:
        database_name = self.parameters["DatabaseName"]
        table_input = self.parameters["TableInput"]
        table = self.glue_backend.get_table(database_name, table_input["Name"])
        if self.parameters.get("SkipArchive"):
            # No archived copy of the version being replaced: the count stays the same.
            table.versions.pop(str(table._current_version), None)
        elif len(table.versions) >= most:
            raise ResourceNumberLimitExceededException(
                f"Table {database_name}.{table_input['Name']} has reached its limit of {most} versions"
            )
        table.update(table_input)
        return EmptyResult()

    GlueResponse.update_table = update_table  # type: ignore[method-assign]  # the patch
