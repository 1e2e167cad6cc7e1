"""Athena's rules, kept here so that the local engine fails where Athena would (issue 16) and writes
what Athena would write (docs/design.md §2.6). The engine (`duckdb.py`) calls them; none of them
is the engine's own choice:
- only Athena's statements run (`STATEMENT_KINDS`: SELECT/WITH/VALUES, INSERT, CTAS, DROP TABLE),
  one per query;
- a CTAS with `external_location` is refused when the workgroup enforces its configuration, as the
  stack's does ("Considerations and limitations for CTAS queries", Athena user guide);
- one INSERT or CTAS may write at most 100 partitions (HIVE_TOO_MANY_OPEN_PARTITIONS; "Using CTAS
  and INSERT INTO to work around the 100 partition limit", Athena user guide);
- functions DuckDB has and Athena (Trino) lacks are refused by name (`DUCKDB_ONLY_FUNCTIONS`): sqlglot
  would otherwise pass them through and the SQL would run here and fail on Athena;
- a statement that scans more than the workgroup's per-query cutoff fails (`ScanCutoffError`);
- what is written is named and compressed as Athena does: Parquet files `part-<uuid>`, snappy unless
  the CTAS or the table says otherwise, a CTAS without a location under `athena-results/tables/`;
  files named `_…` or `.…` are never read.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from sales_ops.query.errors import QueryError, ScanCutoffError
from sales_ops.query.sandbox import FILE_READERS
from sales_ops.settings import ATHENA_RESULTS_PREFIX, Settings

# What Athena's DML/DDL subset the engine runs starts with (anything else is refused by name).
STATEMENT_KINDS = ("SELECT", "WITH", "VALUES", "(", "INSERT", "CREATE", "DROP")
MAX_PARTITIONS_PER_WRITE = 100  # Athena: open partition writers per CTAS or INSERT INTO
# DuckDB functions the project could reach for by habit that Athena engine 3 does not have (each
# has a Trino spelling: date_format, regexp_like, max_by, array_join(array_agg()), approx_percentile…).
# The file readers are refused too: user SQL reads the catalog's tables, never files by path.
DUCKDB_ONLY_FUNCTIONS = (
    frozenset(
        {
            "strftime", "strptime", "epoch", "epoch_ms", "epoch_us", "today", "datediff", "date_sub",
            "list_filter", "list_transform", "list_value", "list_aggregate", "string_split", "str_split",
            "regexp_matches", "struct_pack", "len", "ifnull", "printf", "median", "quantile",
            "quantile_cont", "arg_max", "arg_min", "string_agg", "group_concat",
        }
    )
    | FILE_READERS
)  # fmt: skip
PARQUET_COMPRESSIONS = ("snappy", "zstd", "gzip", "uncompressed", "lz4")
PARTITION_FILE_PATTERN = "part-{uuid}"  # DuckDB's COPY … PARTITION_BY names each file so


def refuse_duckdb_only_functions(tokens: list[Any] | None) -> None:
    """QueryError naming the first DuckDB-only function called in a statement, from its Trino
    `tokens` (strings and comments aside); None (it does not tokenize): the parser reports it."""
    from sqlglot.tokens import TokenType

    for token, after in itertools.pairwise(tokens or []):
        name = token.text.lower()
        if after.token_type == TokenType.L_PAREN and name in DUCKDB_ONLY_FUNCTIONS:
            if token.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
                continue
            raise QueryError(
                f"function {name}() refused: it is DuckDB's, and Athena (engine 3, Trino) does not have it"
            )


def enforce_scan_cutoff(read: int, cutoff: int) -> None:
    """As the workgroup's BytesScannedCutoffPerQuery: more than the cutoff fails the statement.

    Athena cancels while it reads; the local engine knows the figure once DuckDB has read, so a
    SELECT fails after the fact and a write is checked before its partitions are registered.
    """
    if read > cutoff:
        raise ScanCutoffError(read, cutoff)


def too_many_open_partitions(partitions: int, limit: int) -> QueryError:
    """Athena's failure for a statement that writes more than `limit` partitions."""
    return QueryError(
        f"HIVE_TOO_MANY_OPEN_PARTITIONS: Exceeded limit of {limit} open "
        f"writers for partitions/buckets ({partitions} partitions in one statement)"
    )


def external_location_refused(name: str, workgroup: str) -> QueryError:
    """Athena's failure for a CTAS naming external_location in a workgroup that enforces its
    configuration."""
    return QueryError(
        f"CREATE TABLE {name}: the workgroup {workgroup!r} enforces its "
        "configuration, so Athena fails a CTAS that specifies external_location; leave it "
        "out (the table goes under the workgroup's results location) or INSERT INTO a table "
        "registered at the location you want"
    )


def ctas_location(settings: Settings) -> str:
    """Where a CTAS without external_location writes: a fresh folder of the workgroup's results."""
    return settings.s3_uri(f"{ATHENA_RESULTS_PREFIX}tables/{uuid.uuid4()}/")


def parquet_compression(requested: str | None, table: dict[str, Any]) -> str:
    """The CTAS's write_compression, else the Glue table's parquet.compression, else snappy."""
    compression = (requested or table.get("Parameters", {}).get("parquet.compression") or "snappy").lower()
    if compression not in PARQUET_COMPRESSIONS:
        raise QueryError(f"unsupported Parquet compression {compression!r}")
    return compression


def data_file_name() -> str:
    """The name of one Parquet file an unpartitioned write adds."""
    return f"part-{uuid.uuid4()}.parquet"


def hidden(uri: str) -> bool:
    """Files Athena skips: names starting with _ or . (e.g. _SUCCESS, .tmp)."""
    return uri.rsplit("/", 1)[-1][:1] in ("_", ".")


def ctas_properties(statement: Any) -> dict[str, Any]:
    """A CTAS's WITH (…) properties: format, partitioned_by, external_location, write_compression…"""
    from sqlglot import exp

    props: dict[str, Any] = {}
    for prop in (statement.args.get("properties") or exp.Properties()).expressions:
        if isinstance(prop, exp.FileFormatProperty):
            props["format"] = prop.this.name
        elif isinstance(prop, exp.PartitionedByProperty):
            items = prop.this.expressions if hasattr(prop.this, "expressions") else [prop.this]
            props["partitioned_by"] = [i.name for i in items]
        elif isinstance(prop, exp.Property):
            props[prop.name.lower()] = prop.args["value"].name
    return props


def has_temporary(statement: Any) -> bool:
    """Whether a CREATE asks for a temporary table (Athena has none)."""
    from sqlglot import exp

    props = statement.args.get("properties")
    return bool(props) and any(isinstance(p, exp.TemporaryProperty) for p in props.expressions)
