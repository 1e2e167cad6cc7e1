"""customer_activity at any rate (docs/design.md §2.7): bucketed partials, summed in passes.

`customer_activity` is, per customer, the sum of its daily partials (`customer_activity_daily`)
over the dates of its window (30 days). Its size follows the customers of the window, which grows
with the rate: at 1,000 changes/s one statement over the whole window would read tens of GB, past
the workgroup's 1 GiB cutoff. So the partials are partitioned by a bucket of `customer_id` as well
as by date (`{customer_hash}`: md5's first byte, the same on Athena and DuckDB), and the build runs
one INSERT per range of buckets, each reading that range's partials only (a partition filter: a
row filter alone would still scan every file on Athena). A customer lives in one bucket, so the
passes' rows are disjoint and together are the table.

The bucket count is a power of two chosen from the window's orders (an upper bound on its partial
rows) so that one bucket's partials fit a pass; it never shrinks, and a new count rebuilds the
window's partials. At 10 changes/s it is 1: one partials INSERT for up to 100 dates and one pass.

The dashboard's customers panel would read the whole table; instead each pass also writes the
segment figures of its own rows (`customer_segments__versions`, partition v: the build's version,
read by `"$path"`, so a summary reads its pass's output only), and the panel adds up those few rows.
"""

from __future__ import annotations

import math
from datetime import timedelta

from sales_ops.catalog import glue
from sales_ops.curated.planning import pass_budget
from sales_ops.curated.rollup_store import (
    ROLLUP_COLUMNS,
    Counted,
    RollupReport,
    list_objects,
    remove_old_versions,
    version_in,
    version_pairs,
    write_version,
)
from sales_ops.query import render_named
from sales_ops.settings import CURATED_PREFIX, Settings

CUSTOMERS = "customer_activity"
PARTIALS = "customer_activity_daily"
SEGMENTS = "customer_segments"  # per build and pass: new vs returning customers (the dashboard's)
MAX_BUCKETS = 256  # the hash is one byte of md5
# Parquet bytes a partial row may take, read whole (six columns; a random customer_id of ~12
# characters does not compress): measured ~25-30 B on the mock shop (bench/bench_history.py), taken
# at twice that so that the first bucket count chosen holds.
BYTES_PER_PARTIAL_ROW = 64


def bucket_count(settings: Settings, window_rows: int, previous: int) -> int:
    """Buckets (a power of two, at most MAX_BUCKETS) such that one bucket of the window's
    partials fits a pass; never fewer than `previous` (a count that flapped would rebuild the
    window's partials each time)."""
    needed = math.ceil(window_rows * BYTES_PER_PARTIAL_ROW / pass_budget(settings))
    buckets = 1
    while buckets < min(needed, MAX_BUCKETS):
        buckets *= 2
    return max(buckets, previous)


def bucket_passes(sizes: dict[int, int], buckets: int, budget: int) -> list[tuple[int, int]]:
    """Ranges of buckets (first, last) whose partials' bytes fit the budget; a bucket bigger than
    the budget alone is a pass of its own (bucket_count's estimate, at about twice the measured
    bytes a row, is there so that none is)."""
    passes: list[tuple[int, int]] = []
    start, total = 0, 0
    for bucket in range(buckets):
        size = sizes.get(bucket, 0)
        if bucket > start and total + size > budget:
            passes.append((start, bucket - 1))
            start, total = bucket, 0
        total += size
    passes.append((start, buckets - 1))
    return passes


def partial_sizes(settings: Settings, ledger: dict[str, str]) -> dict[int, int]:
    """Bytes of the ledger's partials (date → version) per bucket, as S3 lists them."""
    sizes: dict[int, int] = {}
    for day, version in ledger.items():
        prefix = settings.s3_uri(f"{CURATED_PREFIX}{PARTIALS}/order_date={day}/v={version}/")
        for key, size in list_objects(settings, prefix):
            segment = key.rsplit("/", 2)[-2]
            if segment.startswith("bucket="):
                bucket = int(segment.removeprefix("bucket="))
                sizes[bucket] = sizes.get(bucket, 0) + size
    return sizes


def merge_passes(settings: Settings, tags: list[str], low: int, high: int) -> list[tuple[int, int]]:
    """Ranges of buckets `low` to `high` of the partials the slices `tags` of a by-date build
    wrote to the scratch table (rollups.write_dates) whose bytes fit a pass each."""
    sizes: dict[int, int] = {}
    for key, size in list_objects(settings, settings.s3_uri(f"{CURATED_PREFIX}_scratch/{PARTIALS}/")):
        keys = dict(part.split("=", 1) for part in key.split("/") if "=" in part)
        if keys.get("v") in tags and "bucket" in keys:
            sizes[int(keys["bucket"])] = sizes.get(int(keys["bucket"]), 0) + size
    ranges = bucket_passes({b - low: n for b, n in sizes.items()}, high - low + 1, pass_budget(settings))
    return [(first + low, last + low) for first, last in ranges]


def build_window(
    settings: Settings,
    counted: Counted,
    ledger: dict[str, str],
    buckets: int,
    retention_hours: float,
    started: float,
) -> RollupReport:
    """A new version of customer_activity from the partials `ledger` names, in passes by bucket,
    each pass followed by the segment figures of what it wrote."""
    passes = bucket_passes(partial_sizes(settings, ledger), buckets, pass_budget(settings))
    bodies = [
        render_named(
            "customer_activity_pass",
            settings.database,
            partials=version_pairs(ledger),
            buckets=buckets,
            bucket_low=low,
            bucket_high=high,
        )
        for low, high in passes
    ]
    segments = _ensure_segments_table(settings)

    def summarise(version: str, files: list[str]) -> None:
        body = render_named("customer_activity_segments", settings.database, files=files, version=version)
        counted.run(f"INSERT INTO {settings.database}.{segments}\n{body}")

    report = write_version(settings, counted, CUSTOMERS, bodies, retention_hours, started, summarise)
    current = settings.s3_uri(f"{CURATED_PREFIX}{SEGMENTS}/v={version_in(report.location)}/")
    remove_old_versions(settings, SEGMENTS, current, timedelta(hours=retention_hours))
    return report


def _ensure_segments_table(settings: Settings) -> str:
    """`customer_segments__versions` (partition v), where each build's passes write their figures."""
    name = f"{SEGMENTS}__versions"
    if glue.get_table(settings, name) is None:
        columns = [(c, t) for c, t, _ in ROLLUP_COLUMNS[SEGMENTS]]
        root = settings.s3_uri(f"{CURATED_PREFIX}{SEGMENTS}/")
        glue.put_table(settings, glue.parquet_table_input(name, columns, root, [("v", "string")]))
    return name
