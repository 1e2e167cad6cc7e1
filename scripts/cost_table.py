"""The monthly cost table of docs/deploy-aws.md, from measured statement counts and bytes.

    python scripts/cost_table.py            # print the table
    python scripts/cost_table.py --write    # replace it in docs/deploy-aws.md
    python scripts/cost_table.py --measure  # re-measure scripts/cycle_counts.json on a private stack

Athena is not typed in: how many statements each stage of a cycle runs comes from
scripts/cycle_counts.json, which `--measure` (and tests/test_cost.py, which fails when the file and
the code disagree) measures by running one cycle on the local engine through the stages' public
entry points (sales_ops.query.meter). How many bytes each statement scans, and how that grows with
the history, comes from bench/bench_history.py's figures (scripts/cycle_bytes.json): each
statement's bytes are fitted as a + g * (changes in the history), and compaction's also grow with
the size of the date partitions it rewrites (the bench's second part). Each statement is billed at
least 10 MB, rounded up to the MB, at $5 per TB; one past the workgroup's cutoff is cancelled and
billed the cutoff.

Region us-east-1, on-demand list prices as recorded in PRICES (price date: PRICE_DATE), each from
the page in SOURCES; a month is 730 hours. tests/test_cost.py checks the doc shows exactly this.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sales_ops.curated.compaction import DELTA_SHARE, FOLD_FRACTION, MAX_DELTAS, ROW_BYTES  # noqa: E402
from sales_ops.curated.customers import MAX_BUCKETS  # noqa: E402
from sales_ops.deploy import read_template  # noqa: E402

DOC = ROOT / "docs" / "deploy-aws.md"
COUNTS = ROOT / "scripts" / "cycle_counts.json"
BYTES = ROOT / "scripts" / "cycle_bytes.json"
START, END = "<!-- cost-table:start -->", "<!-- cost-table:end -->"
PRICE_DATE = "2026-12-01"
HOURS = 730
SECONDS = HOURS * 3600
DAYS = HOURS / 24
MB = 1024**2
RATES = (0.0, 10.0, 1000.0)  # changes per second: idle, 10/s, 1,000/s
MONTHS = (1, 12)
RECORD_KB = 1.2  # a stream record with both images: 0.9-1.5 KB (Kinesis, Pipe, Firehose, raw line)
RECORD_KB_MAX = 1.5  # what sizes the Kinesis shards
ITEM_KB = 0.5  # an order item in DynamoDB (one write unit)
GZIP_RATIO = 0.15  # raw JSON lines compress about 7x
LAMBDA_LOG_KB = 0.6  # START, END, REPORT and the handler's one summary line per invocation
DASHBOARD_HOURS_PER_DAY = 8
ATHENA_GETS_PER_OBJECT = 2  # a Parquet object read: its footer, then its column chunks
GLUE_CALLS_PER_STATEMENT = 3  # GetTable, GetPartitions (a page per 1,000), GetDatabase
# What a statement reads besides its growth with the history. Most read orders (or customers) of
# the dates a cycle touches, or of the open dates, or of the window: that follows the order
# density, a day's orders at the rate, so the bench's figure (taken at its own, scaled-down
# density) is scaled by the ratio of the two. These read rows per product or per dashboard group
# (the catalogue's size, whatever the rate), and compaction's raw reads follow the rate (`p`, the
# partitions, is measured apart).
FOLLOWS_CATALOGUE = frozenset(
    {"INSERT INTO inventory_status__build", "INSERT INTO sales_totals__build", "dashboard_inventory"}
)
# Statements that read a fixed number of dates by construction: the sampled reconciliation reads
# RECONCILE_DATES (4) dates drawn at random (sales_ops/quality/reconciliation.py), so what differs
# between the bench's histories is which dates the draw picked (a short history has more of its
# small, recent days), not a growth: no slope is fitted to it.
BOUNDED = frozenset({"lake_rows"})
# Statements the code splits to read at most a third of the cutoff each: by-date writes by date
# (sales_ops.curated.rollup_store.write_chunks) and customer_activity's passes and their summaries
# by customer bucket (sales_ops.curated.customers, at most 256). A by-date write reads a date too
# big for one statement a slice of the orders at a time (each slice under the cutoff less the live
# deltas, as SLICED_READS) and adds the slices' sums up in one more statement
# (sales_ops.curated.rollups.write_dates).
BY_DATE_WRITES = frozenset(
    {
        "INSERT INTO sales_by_product_hourly__versions",
        "INSERT INTO sales_daily__versions",
        "INSERT INTO customer_activity_daily__versions",
    }
)
BY_BUCKET = frozenset({"INSERT INTO customer_activity__build", "INSERT INTO customer_segments__versions"})
# A fold's statements, each under the whole cutoff less the live deltas it reads (at most
# DELTA_SHARE of it): the merge in batches of buckets (sales_ops.curated.compaction.Compaction.
# _batches: a date grown too big is written in halves, quarters…, so there is no smallest unit),
# the orphan lookup in slices of the orders, the row counts in groups of buckets.
FOLD_WRITES = frozenset({"compact_orders", "compact_orphans", "compact_rows"})
# Readers that go a slice of the orders at a time when their dates do not fit one statement
# (sales_ops.curated.buckets.reading_slices): the per-cycle uniqueness check, the sampled
# reconciliation's reads (its lookups in the slices holding the sampled orders; its random draw
# reads one slice, billed here as all of them: more, not less) and the dashboard's live panels
# (`WITH live AS`, dashboard_live.sql; sales_ops.dashboard.snapshot.read_live), which then read the
# settled dates' figures in one more statement (a few rows).
SLICED_READS = frozenset({"check_unique_order_id", "lake_rows", "WITH live AS"})
THEN_ONE_MORE = frozenset({"WITH live AS"})
# The dashboard's statement of the raw tail's dates (dashboard_tail_dates.sql): the tail, which
# each of its live statements (THEN_ONE_MORE) reads whole besides its slice of the orders.
TAIL_READ = "SELECT DISTINCT CAST((CASE"
# A fold's statements that read the live deltas only (compact_touched.sql without orphans: the
# deltas' order_id and order_date): at most the deltas, which fold once they hold DELTA_SHARE of
# the cutoff (plus the last pass's), whatever the order density.
DELTA_READS = frozenset({"compact_touched"})
PRICES = {
    "kinesis_shard_hour": 0.015,
    "kinesis_put_unit_million": 0.014,
    "dynamodb_write_million": 0.625,
    "dynamodb_gb_month": 0.25,  # beyond the first 25 GB
    "dynamodb_free_gb": 25,
    "dynamodb_pitr_gb_month": 0.20,
    "dynamodb_stream_read_100k": 0.02,  # GetRecords; the first 2.5M a month free
    "dynamodb_stream_free_reads": 2_500_000,
    "pipes_request_million": 0.40,
    "firehose_gb": 0.029,  # ingestion, records rounded up to 5 KB
    "firehose_dp_gb": 0.02,
    "firehose_dp_objects_thousand": 0.005,
    "lambda_request_million": 0.20,
    "lambda_gb_second": 0.0000166667,
    "s3_gb_month": 0.023,
    "s3_put_list_thousand": 0.005,  # PUT, COPY, POST, LIST
    "s3_get_thousand": 0.0004,
    "athena_tb": 5.0,
    "athena_min_mb": 10,
    "glue_requests_100k": 1.0,  # Data Catalog requests beyond the first million a month
    "glue_free_requests": 1_000_000,
    "logs_gb": 0.50,  # CloudWatch Logs ingestion (standard)
    "cloudwatch_alarm": 0.10,
    "cloudwatch_custom_metric": 0.30,
}
SOURCES = {
    "Athena": "https://aws.amazon.com/athena/pricing/",
    "Kinesis Data Streams (a shard: 1 MB/s and 1,000 records/s of writes)": (
        "https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html"
    ),
    "Kinesis Data Streams prices": "https://aws.amazon.com/kinesis/data-streams/pricing/",
    "DynamoDB (on-demand, storage, PITR, Streams reads)": "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "EventBridge Pipes (64 KB chunks)": "https://aws.amazon.com/eventbridge/pricing/",
    "Firehose": "https://aws.amazon.com/firehose/pricing/",
    "Lambda": "https://aws.amazon.com/lambda/pricing/",
    "S3 (storage, requests)": "https://aws.amazon.com/s3/pricing/",
    "Glue (Data Catalog requests)": "https://aws.amazon.com/glue/pricing/",
    "CloudWatch (Logs, alarms, metrics)": "https://aws.amazon.com/cloudwatch/pricing/",
}


def _sensor_interval() -> float:
    """The raw-objects sensor's tick (sales_ops/defs/ingest/sensors.py), without Dagster's warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sales_ops.defs.ingest.sensors import INTERVAL_S
    return float(INTERVAL_S)


def cycle_seconds(params: dict[str, float]) -> float:
    """How often a cycle runs while changes flow: a Firehose delivery observed by the sensor, but
    compaction (and the rollups and checks after it) at most once per cadence tick
    (docs/design.md §2.5 "Cadence", SALES_OPS_CADENCE_MINUTES, default 5)."""
    from sales_ops.settings import DEFAULT_CADENCE_MINUTES

    return max(params["FirehoseBufferSeconds"], _sensor_interval(), DEFAULT_CADENCE_MINUTES * 60.0)


def defaults(template: dict[str, Any]) -> dict[str, float]:
    return {k: float(v["Default"]) for k, v in template["Parameters"].items() if v.get("Type") == "Number"}


# --- the measured part: statements and their bytes --------------------------------------------------
@dataclass
class Fit:
    """One statement's bytes: `a` + `g` per change of history; compaction's also `p` per order of
    the day partition a cycle's new orders land in, and `older` per order of the older dates it
    rewrites; `grows` if it reads the whole history (one partition per day)."""

    label: str
    a: float
    g: float
    p: float = 0.0
    grows: bool = False
    older: float = 0.0  # bytes per order of the older dates it rewrites (their Parquet)


def _line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares a + g·x, g ≥ 0 (a statement that reads less with more history is flat)."""
    if len(points) < 2:
        return (points[0][1] if points else 0.0), 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    g = max(0.0, sum((x - mx) * (y - my) for x, y in points) / var) if var else 0.0
    return max(0.0, my - g * mx), g


def fits(figures: dict[str, Any]) -> dict[str, list[Fit]]:
    """Stage → its statements' fits, from bench_history's figures."""
    histories = figures["histories"]
    out: dict[str, list[Fit]] = {}
    for stage in histories[-1]["statements"]:
        runs = [h["statements"][stage] for h in histories]
        same = all(len(r) == len(runs[-1]) for r in runs)
        stage_fits = []
        for i, (label, last) in enumerate(runs[-1]):
            # The slope beyond the lifecycle's window: what a statement reads of the dates a
            # cycle's changes touch grows until the history spans them (about three weeks,
            # docs/design.md §2.5), then stays; the two longest histories give what grows on.
            points = (
                [(h["history_changes"], r[i][1]) for h, r in zip(histories, runs, strict=True)][-2:]
                if same
                else []
            )
            a, g = _line(points or [(histories[-1]["history_changes"], last)])
            if label in BOUNDED:  # the mean of the runs beyond the window, no growth
                sizes = [y for _, y in points] or [last]
                a, g = sum(sizes) / len(sizes), 0.0
            first = runs[0][i][1] if same else last
            stage_fits.append(Fit(label, a, g, grows=same and last >= 2 * max(first, 1)))
        out[stage] = stage_fits
    partitions = figures.get("partitions") or []
    if len(partitions) > 1 and "compact" in out:
        runs = [p["statements"] for p in partitions]
        if all(len(r) == len(out["compact"]) for r in runs):
            for i, fit in enumerate(out["compact"]):
                _, fit.p = _line([(p["orders"], r[i][1]) for p, r in zip(partitions, runs, strict=True)])
            # The statement that reads the rewritten partitions also reads the older dates the
            # cycle's status changes touch: their Parquet, measured per order.
            biggest = partitions[-1]
            merge = max(out["compact"], key=lambda f: f.p)
            merge.older = biggest.get("partition_bytes", 0) / biggest["orders"]
    return out


@dataclass
class Shop:
    """What a month at a rate means for the data: history, orders, partitions."""

    rate: float
    month: int
    changes_per_order: float
    live_share: float  # live orders / orders created (the rest were deleted)
    touched_days: float  # date partitions one cycle rewrites (measured by the bench)
    bench_orders_per_day: float  # the density of the bench's history

    @property
    def density(self) -> float:
        """A day's orders at this rate over the bench history's: what scales a statement's fixed part."""
        return self.orders_per_day / self.bench_orders_per_day

    @property
    def days(self) -> float:
        return (self.month - 0.5) * DAYS  # the middle of the month

    @property
    def history(self) -> float:
        return self.rate * self.days * 86400

    @property
    def orders_per_day(self) -> float:
        return self.rate * 86400 / self.changes_per_order

    @property
    def live_orders(self) -> float:
        return self.history / self.changes_per_order * self.live_share

    @property
    def older_rewritten_orders(self) -> float:
        """Orders of the dates a cycle rewrites besides the current one."""
        return max(0.0, min(self.touched_days, self.days) - 1) * self.orders_per_day


def statement_bytes(fit: Fit, shop: Shop, reference_rate: float, stage: str) -> float:
    """A statement's bytes this month: the change set's part follows the rate (compaction reads
    the cycle's raw objects) or the order density (the dates it reads hold a day's orders each),
    the history's part follows the history."""
    if stage == "compact":
        scale = shop.rate / reference_rate
    else:
        scale = 1.0 if fit.label in FOLLOWS_CATALOGUE else shop.density
    fixed = fit.a * scale
    partitions = fit.p * shop.orders_per_day + fit.older * shop.older_rewritten_orders
    return fixed + fit.g * shop.history + partitions


def split(label: str, nbytes: float, shop: Shop, cutoff: float, tail: float = 0.0) -> list[float]:
    """The statements one benched statement becomes where the code splits it (a third of the
    cutoff each, BY_DATE_WRITES and BY_BUCKET; the cutoff less the live deltas, FOLD_WRITES,
    SLICED_READS and a date of BY_DATE_WRITES), each one's bytes. The dashboard's live statements
    also read the raw tail (`tail` bytes) whole, in each slice."""
    if label in DELTA_READS:
        return [min(nbytes, cutoff * DELTA_SHARE)]
    if label in THEN_ONE_MORE and nbytes > cutoff * (1 - DELTA_SHARE):
        room = cutoff * (1 - DELTA_SHARE) - tail
        if room <= 0:  # the tail alone leaves no room: every slice passes the cutoff
            return [nbytes]
        n = math.ceil((nbytes - tail) / room)
        return [(nbytes - tail) / n + tail] * n + [0.0]
    sliced = FOLD_WRITES | SLICED_READS
    budget = cutoff * (1 - DELTA_SHARE) if label in sliced else cutoff / 3
    if nbytes <= budget or label not in BY_DATE_WRITES | BY_BUCKET | sliced:
        return [nbytes]
    if label in sliced:
        n = math.ceil(nbytes / budget)
        return [nbytes / n] * n + ([0.0] if label in THEN_ONE_MORE else [])
    if label in BY_BUCKET:
        n = min(math.ceil(nbytes / budget), MAX_BUCKETS)  # sales_ops.curated.customers
        return [nbytes / n] * n
    dates = max(1, round(min(shop.touched_days, shop.days)))
    per_statement = max(1, math.floor(budget / (nbytes / dates)))
    n = math.ceil(dates / per_statement)
    room, out = cutoff * (1 - DELTA_SHARE), []
    for piece in [nbytes / n] * n:
        slices = math.ceil(piece / room)
        # a date past the room: its slices, then the statement adding their sums up (a few rows)
        out += [piece] if slices == 1 else [piece / slices] * slices + [0.0]
    return out


def billed(nbytes: float, cutoff: float) -> tuple[float, bool]:
    """Bytes Athena bills for one statement (≥ 10 MB, whole MB; past the cutoff it is cancelled and
    bills what it scanned by then), and whether it hit the cutoff."""
    if nbytes > cutoff:
        return cutoff, True
    return max(math.ceil(nbytes / MB), PRICES["athena_min_mb"]) * MB, False


@dataclass
class Athena:
    dollars: dict[str, float]  # stage → dollars a month
    statements: float  # a month
    objects_read: float  # Parquet objects read a month (S3 GETs), partition listings (S3 LISTs)
    listings: float
    over_cutoff: list[str]


def athena_month(
    shop: Shop,
    counts: dict[str, dict[str, int]],
    models: dict[str, list[Fit]],
    reference_rate: float,
    cutoff: float,
    cache_s: float,
    cycle_s: float,
) -> Athena:
    busy = shop.rate > 0
    runs = {  # stage → (which counts, runs a month)
        "compact": ("cycle" if busy else "idle", SECONDS / cycle_s if busy else HOURS),
        "rollups": ("cycle" if busy else "idle", SECONDS / cycle_s if busy else HOURS),
        "hourly_rollups": ("cycle" if busy else "idle", HOURS),  # policies.HOURLY_ROLLUP
        "checks": ("cycle" if busy else "idle", SECONDS / cycle_s if busy else HOURS),
        "reconciliation": ("cycle", HOURS),  # hourly (docs/design.md: the RECONCILE policy)
        # The dashboard reads an hourly rollup's new build once (metrics.RollupReads) while open.
        "hourly_dashboard": ("cycle", DASHBOARD_HOURS_PER_DAY * DAYS),
        "dashboard": ("cycle", DASHBOARD_HOURS_PER_DAY * 3600 / cache_s * DAYS),
    }
    models = with_fold(models, counts)
    planned = {}
    for stage, (kind, per_month) in runs.items():
        n = counts[kind].get(stage, 0)
        planned[stage] = ((models.get(stage, []) + [Fit("(not benched)", 0, 0)] * n)[:n], per_month)
    per_fold = cycles_per_fold(shop, cycle_s, cutoff)
    planned["fold"] = (models["fold"], SECONDS / cycle_s / per_fold if busy else 0.0)
    out = Athena({}, 0.0, 0.0, 0.0, [])
    for stage, (stage_fits, per_month) in planned.items():
        total = 0.0
        statements = 0
        tail = sum(
            statement_bytes(f, shop, reference_rate, stage) for f in stage_fits if f.label == TAIL_READ
        )
        for fit in stage_fits:
            pieces = split(fit.label, statement_bytes(fit, shop, reference_rate, stage), shop, cutoff, tail)
            statements += len(pieces)
            for nbytes in pieces:
                bill, cut = billed(nbytes, cutoff)
                total += bill
                if cut and stage not in out.over_cutoff:
                    out.over_cutoff.append(stage)
            # Partitions (and objects) a statement reads: one a day of history if it reads it all.
            parts = 1.0
            if shop.rate and fit.grows:
                parts = shop.days
            elif shop.rate and fit.p:
                parts = min(shop.touched_days, shop.days)
            out.objects_read += parts * per_month
            out.listings += parts * per_month
        out.dollars[stage] = total * per_month / 1024**4 * PRICES["athena_tb"]
        out.statements += statements * per_month
    return out


def with_fold(models: dict[str, list[Fit]], counts: dict[str, dict[str, int]]) -> dict[str, list[Fit]]:
    """The bench's cycle always folds: its compaction statements beyond the measured cycle's are
    a fold's, billed as a stage of their own (`fold`), once every `cycles_per_fold` cycles."""
    n = counts["cycle"].get("compact", 0)
    compact = models.get("compact", [])
    return {**models, "compact": compact[:n], "fold": compact[n:]}


def cycles_per_fold(shop: Shop, cycle_s: float, cutoff: float) -> float:
    """Cycles between two folds (sales_ops.curated.compaction.Compaction.fold_due): once the live
    deltas hold FOLD_FRACTION of the base rows of the dates they touch, MAX_DELTAS of them (a
    cycle writes one per pass), or DELTA_SHARE of the cutoff in bytes (ROW_BYTES a row: more than
    the ~60 measured, so this folds no less often than the code). A cycle's delta rows are taken
    as its changes (at most that many orders)."""
    changes = shop.rate * cycle_s
    if changes <= 0:  # idle: no deltas, no fold
        return float(MAX_DELTAS)
    base_rows = FOLD_FRACTION * min(shop.touched_days, shop.days) * shop.orders_per_day
    by_bytes = DELTA_SHARE * cutoff / (changes * ROW_BYTES)
    return max(1.0, min(float(MAX_DELTAS), math.ceil(base_rows / changes), math.floor(by_bytes)))


# --- the rest of the stack ------------------------------------------------------------------------
def highest_rate_within_cutoff(
    counts: dict[str, dict[str, int]],
    figures: dict[str, Any],
    params: dict[str, float],
    month: int = 12,
    stage: str | None = None,
) -> tuple[float, list[str]]:
    """The highest rate (changes/s, to 1) at which no statement of the model (of `stage` only, if
    given) passes the cutoff, and the stages that pass it just above."""
    from sales_ops.dashboard.app import ATHENA_CACHE_SECONDS

    models = fits(figures)

    def over(rate: float) -> list[str]:
        shop = shop_of(figures, rate, month)
        cutoff = params["AthenaBytesScannedCutoff"]
        cycle_s = cycle_seconds(params)
        use = athena_month(shop, counts, models, figures["rate"], cutoff, ATHENA_CACHE_SECONDS, cycle_s)
        return [s for s in use.over_cutoff if stage in (None, s)]

    low, high = 0.0, 100_000.0
    while high - low > 1:
        middle = (low + high) / 2
        low, high = (low, middle) if over(middle) else (middle, high)
    return low, over(high)


def sensor_lists_per_month() -> float:
    """S3 ListObjectsV2 calls of the sensors and checks that poll S3 while nothing happens."""
    ticks = SECONDS / _sensor_interval()
    raw_and_errors = 2 * ticks  # raw_objects_sensor and processing_failed_sensor: one page each
    freshness = SECONDS / 900 * 3  # every 15 minutes: dt prefixes, hour prefixes, objects
    backfill = SECONDS / 300  # the export sensor
    return raw_and_errors + freshness + backfill


def monthly(
    shop: Shop, p: dict[str, float], template: dict[str, Any], athena: Athena, cycle_s: float
) -> dict[str, float]:
    """Service → dollars a month."""
    rate = shop.rate
    cost: dict[str, float] = {}
    changes = rate * SECONDS
    shards = max(p["KinesisShardCount"], math.ceil(rate / 1000), math.ceil(rate * RECORD_KB_MAX / 1024))
    cost["Kinesis Data Streams"] = (
        shards * HOURS * PRICES["kinesis_shard_hour"] + changes / 1e6 * PRICES["kinesis_put_unit_million"]
    )
    cost["DynamoDB writes (on-demand)"] = changes / 1e6 * PRICES["dynamodb_write_million"]
    table_gb = shop.live_orders * ITEM_KB / MB
    cost["DynamoDB storage + PITR"] = (
        max(0.0, table_gb - PRICES["dynamodb_free_gb"]) * PRICES["dynamodb_gb_month"]
        + table_gb * PRICES["dynamodb_pitr_gb_month"]
    )
    # The Pipe polls each stream shard about 4 times a second, as Lambda's event source mapping does.
    stream_shards = max(1, math.ceil(rate / 1000))
    reads = stream_shards * 4 * SECONDS
    cost["DynamoDB Streams reads (Pipe polling)"] = (
        max(0.0, reads - PRICES["dynamodb_stream_free_reads"]) / 1e5 * PRICES["dynamodb_stream_read_100k"]
    )
    cost["EventBridge Pipes"] = pipe_requests(rate, p)[0] / 1e6 * PRICES["pipes_request_million"]
    gb = changes * RECORD_KB / MB
    flushes = SECONDS / p["FirehoseBufferSeconds"] if rate else 0
    objects = max(flushes, gb * 1024 / p["FirehoseBufferMB"])
    cost["Firehose"] = (
        changes * 5 / MB * PRICES["firehose_gb"]
        + gb * PRICES["firehose_dp_gb"]
        + objects / 1000 * PRICES["firehose_dp_objects_thousand"]
    )
    invocations = max(SECONDS / 60, gb * 1024) if rate else 0  # one per 1 MB or 60 s of records
    cost["Lambda"] = (
        invocations / 1e6 * PRICES["lambda_request_million"]
        + invocations * 0.2 * 0.25 * PRICES["lambda_gb_second"]
    )
    cost["CloudWatch Logs"] = invocations * LAMBDA_LOG_KB / MB * PRICES["logs_gb"]
    raw_gb = shop.history * RECORD_KB * GZIP_RATIO / MB  # raw/ is kept: all of history
    cost["S3 storage (raw/)"] = raw_gb * PRICES["s3_gb_month"]
    cycles = SECONDS / cycle_s if rate else HOURS
    # Compaction lists the raw objects of its lookback (a page per 1,000) and reads/writes its
    # lock and state: about 6 requests a cycle besides the listing.
    from sales_ops.curated.state import LOOKBACK_HOURS

    lookback_pages = math.ceil(objects / HOURS * LOOKBACK_HOURS / 1000) if rate else 1
    puts_lists = objects + sensor_lists_per_month() + cycles * (lookback_pages + 6) + athena.listings
    cost["S3 requests"] = (
        puts_lists / 1000 * PRICES["s3_put_list_thousand"]
        + athena.objects_read * ATHENA_GETS_PER_OBJECT / 1000 * PRICES["s3_get_thousand"]
    )
    glue_calls = athena.statements * GLUE_CALLS_PER_STATEMENT + cycles * (
        min(shop.touched_days, shop.days) + 4
    )
    cost["Glue Data Catalog requests"] = (
        max(0.0, glue_calls - PRICES["glue_free_requests"]) / 1e5 * PRICES["glue_requests_100k"]
    )
    cost["Glue crawler"] = 0.0  # no schedule; compaction registers partitions (one crawl at setup)
    alarms = sum(1 for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm")
    cost["CloudWatch alarms + metric"] = (
        alarms * PRICES["cloudwatch_alarm"] + PRICES["cloudwatch_custom_metric"]
    )
    for stage, dollars in athena.dollars.items():
        cost[f"Athena: {stage}"] = dollars
    return cost


def pipe_requests(rate: float, p: dict[str, float]) -> tuple[float, float]:
    """Pipe requests a month: (each 64 KB chunk of a batch's payload is one request, the reading
    taken; each event is one request, the other reading)."""
    if not rate:
        return 0.0, 0.0
    changes = rate * SECONDS
    batch = min(p["PipeBatchSize"], max(1.0, rate * p["PipeBatchingWindowSeconds"]))
    return changes / batch * math.ceil(batch * RECORD_KB / 64), changes


# --- the table --------------------------------------------------------------------------------------
def measured() -> tuple[dict[str, dict[str, int]], dict[str, Any]]:
    return json.loads(COUNTS.read_text()), json.loads(BYTES.read_text())


def shop_of(figures: dict[str, Any], rate: float, month: int) -> Shop:
    """The shop at `rate` in `month`, shaped as the longest benched history measured it."""
    biggest = figures["histories"][-1]
    return Shop(
        rate,
        month,
        changes_per_order=biggest["history_changes"] / biggest["orders"],
        live_share=biggest["live_orders"] / biggest["orders"],
        touched_days=float(biggest.get("partitions_rewritten") or 1),
        bench_orders_per_day=biggest["orders"] / biggest["days"],
    )


def columns() -> list[tuple[str, dict[str, float], Athena]]:
    from sales_ops.dashboard.app import ATHENA_CACHE_SECONDS

    template = read_template(ROOT / "infra" / "template.yaml")
    params = defaults(template)
    counts, figures = measured()
    models = fits(figures)
    cycle_s = cycle_seconds(params)
    out = []
    for rate in RATES:
        for month in MONTHS:
            shop = shop_of(figures, rate, month)
            athena = athena_month(
                shop,
                counts,
                models,
                figures["rate"],
                params["AthenaBytesScannedCutoff"],
                ATHENA_CACHE_SECONDS,
                cycle_s,
            )
            label = f"{'idle' if not rate else f'{rate:,.0f}/s'}, month {month}"
            out.append((label, monthly(shop, params, template, athena, cycle_s), athena))
    return out


def table() -> str:
    template = read_template(ROOT / "infra" / "template.yaml")
    params = defaults(template)
    counts, figures = measured()
    cols = columns()
    lines = [
        f"Dollars a month, us-east-1 list prices of {PRICE_DATE}, template defaults "
        f"({params['KinesisShardCount']:.0f} shard, Pipe batch {params['PipeBatchSize']:.0f}, "
        f"Firehose {params['FirehoseBufferSeconds']:.0f} s / {params['FirehoseBufferMB']:.0f} MB), "
        f"{RECORD_KB} KB a change. Computed by `scripts/cost_table.py` from measured statement counts "
        "(`scripts/cycle_counts.json`) and bytes (`scripts/cycle_bytes.json`, bench/bench_history.py).",
        "",
        "| service | " + " | ".join(label for label, _, _ in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for service in cols[0][1]:
        lines.append(f"| {service} | " + " | ".join(f"{c[service]:,.2f}" for _, c, _ in cols) + " |")
    lines.append("| **total** | " + " | ".join(f"**{sum(c.values()):,.2f}**" for _, c, _ in cols) + " |")
    athena_totals = [sum(a.dollars.values()) for _, _, a in cols]
    lines.append("| Athena, all stages | " + " | ".join(f"{t:,.2f}" for t in athena_totals) + " |")
    lines += ["", *notes(counts, figures, params, cols)]
    return "\n".join(lines)


def growth(
    figures: dict[str, Any], counts: dict[str, dict[str, int]], rate: float = 10.0
) -> list[tuple[str, str, float, float]]:
    """(stage, statement, bytes in month 1, in month 12) of the statements that read more than
    1.5x in month 12 at `rate`: what still grows with the history."""
    first, last = (shop_of(figures, rate, m) for m in (MONTHS[0], MONTHS[-1]))
    out = []
    for stage, stage_fits in with_fold(fits(figures), counts).items():
        for fit in stage_fits:
            a, b = (statement_bytes(fit, shop, figures["rate"], stage) for shop in (first, last))
            if b > 1.5 * max(a, 1.0):
                out.append((stage, fit.label, a, b))
    return out


def notes(
    counts: dict[str, dict[str, int]],
    figures: dict[str, Any],
    params: dict[str, float],
    cols: list[tuple[str, dict[str, float], Athena]],
) -> list[str]:
    from sales_ops.dashboard.app import ATHENA_CACHE_SECONDS

    touched = figures["histories"][-1].get("partitions_rewritten")
    chunks = math.ceil(params["PipeBatchSize"] * RECORD_KB / 64)
    per_stage = ", ".join(f"{s} {n}" for s, n in counts["cycle"].items())
    idle = ", ".join(f"{s} {n}" for s, n in counts["idle"].items())
    a_pipe, b_pipe = (
        pipe_requests(1000.0, params)[i] / 1e6 * PRICES["pipes_request_million"] for i in (0, 1)
    )
    out = [
        f"- Statements per cycle (measured): {per_stage}; a cycle with nothing new (the hourly "
        f"backstop): {idle}. One cycle per cadence tick while changes flow (every "
        f"{cycle_seconds(params) / 60:.0f} min: Firehose delivers every "
        f"{params['FirehoseBufferSeconds']:.0f} s, compaction runs at most once a tick), the backstop "
        "hourly when idle; the hourly stages (customer_activity's build, and the dashboard's one "
        "read of each new build while a tab is open) and the sampled reconciliation once an hour; "
        f"the dashboard: a tab open {DASHBOARD_HOURS_PER_DAY} h a day, one refresh "
        f"per {ATHENA_CACHE_SECONDS:.0f} s (its cache).",
        f"- Bytes per statement: fitted on bench/bench_history.py's {len(figures['histories'])} history "
        f"sizes ({', '.join(str(h['days']) for h in figures['histories'])} days at "
        f"{figures['rate'] * figures['scale']:g} changes/s), month m's history is the middle of the month; "
        "compaction also grows with the day partition a cycle's new orders land in (measured "
        f"against its size: a full day's orders at the rate) and reads the Parquet of the other "
        f"dates it rewrites ({touched} in all, measured). The other statements' fixed part reads "
        "orders (or customers) of the dates a cycle touches, the open dates or the 30-day window, "
        "and is scaled by the order density (a day's orders at the rate over the bench history's), "
        "except those reading rows per product or dashboard group. Statements the code splits to a "
        "third of the cutoff are billed as the statements they become: by-date rollup writes by "
        "date, customer_activity's passes and their segment figures by customer bucket "
        "(sales_ops/curated/customers.py); and to the cutoff less the live deltas' share, with no "
        "smallest unit: a fold's merge, orphan lookup and row counts, the per-cycle uniqueness "
        "check, the sampled reconciliation's reads, and the by-date rollup writes, whose date too "
        "big for one statement is read in slices and added up by one more (by buckets and slices "
        "of md5(order_id), sales_ops/curated/buckets.py).",
    ]
    athena = {label: sum(a.dollars.values()) for label, _, a in cols}
    out.append(
        f"- Athena at 10 changes/s: month 12 is {athena['10/s, month 12'] / athena['10/s, month 1']:.2f}x "
        "month 1 (issue 20's target: at most 1.2x)."
    )
    growing = growth(figures, counts)
    if growing:
        out.append(
            "- What grows from month 1 to month 12 at 10 changes/s (per statement, fitted beyond the "
            "lifecycle's window): "
            + "; ".join(
                f"{stage} `{label}` {a / MB:,.1f} MB → {b / MB:,.1f} MB" for stage, label, a, b in growing
            )
            + "."
        )
    benched = {s: len(h) for s, h in figures["histories"][-1]["statements"].items()}
    differ = {s: (benched.get(s, 0), n) for s, n in counts["cycle"].items() if benched.get(s, 0) != n}
    if differ:
        out.append(
            "- The bench's cycle and the measured one differ in statements for "
            + ", ".join(f"{s} ({b} benched, {n} measured)" for s, (b, n) in differ.items())
            + ": the bench's cycle always folds (the statements beyond the measured cycle's are "
            "billed as the `fold` stage), and a measured statement the bench has no figure for "
            "counts 10 MB."
        )
    cut = {label: a.over_cutoff for label, _, a in cols if a.over_cutoff}
    if cut:
        out.append(
            "- **Past the 1 GiB per-statement cutoff** (cancelled every run, billed 1 GiB each, the stage "
            "fails): " + "; ".join(f"{label}: {', '.join(stages)}" for label, stages in cut.items()) + "."
        )
    highest, first = highest_rate_within_cutoff(counts, figures, params)
    out.append(
        f"- The highest rate at which no statement passes the cutoff, month 12: about {highest:,.0f} "
        f"changes/s (the model, bisected; just above it: {', '.join(first)}). It is a rate, not a "
        "history. The per-cycle uniqueness check, the sampled reconciliation, the by-date rollup "
        "writes and the dashboard's live panels read a slice of the orders at a time when their "
        "dates do not fit (the buckets the folds write, docs/design.md §2.5; the dashboard then "
        "counts the last hour's customers by a sketch, within about 1.6 %); each of the "
        "dashboard's slices also reads the raw tail whole (about 20 minutes of raw plus what "
        "arrived since the last compaction), which is what bounds the rate."
    )
    fold_rate, _ = highest_rate_within_cutoff(counts, figures, params, stage="fold")
    ten = shop_of(figures, 10.0, MONTHS[-1])
    cutoff = params["AthenaBytesScannedCutoff"]
    fast = shop_of(figures, 1000.0, MONTHS[-1])
    never = fold_rate >= 99_999
    out.append(
        f"- Folds (the `fold` stage): once every {cycles_per_fold(ten, cycle_seconds(params), cutoff):.0f} "
        f"cycles at 10 changes/s and {cycles_per_fold(fast, cycle_seconds(params), cutoff):.0f} at "
        f"1,000 (the live deltas reach {FOLD_FRACTION:g} of their dates' base rows, {MAX_DELTAS} "
        f"deltas, or {DELTA_SHARE:g} of the cutoff in bytes), each merging the touched dates in "
        "batches of buckets under the cutoff less the deltas (a date whose buckets outgrow their "
        "share is written in halves, quarters…, docs/design.md §2.5): "
        + (
            "no fold statement passes the cutoff at any rate up to 100,000 changes/s (month 12)."
            if never
            else f"a fold statement passes the cutoff from about {fold_rate:,.0f} changes/s (month 12)."
        )
    )
    out += [
        f"- Kinesis: a shard takes 1,000 records/s and 1 MB/s; at 1,000 changes/s of up to "
        f"{RECORD_KB_MAX} KB that is {math.ceil(1000 * RECORD_KB_MAX / 1024)} shards (the template "
        f"has {params['KinesisShardCount']:.0f}: raise `KinesisShardCount`).",
        f"- EventBridge Pipes: taken as one request per 64 KB chunk of a batch's payload (a batch of "
        f"{params['PipeBatchSize']:.0f} records of {RECORD_KB} KB is {chunks} "
        f"requests); read as one request per event it would be {b_pipe:,.2f} instead of {a_pipe:,.2f} "
        "a month at 1,000 changes/s.",
        f"- S3 requests: the sensors' ListObjectsV2 (two sensors every 30 s, the freshness check, the "
        f"export sensor), Firehose's PUTs, compaction's listing and lock, and Athena's own reads "
        f"(estimated: one LIST per partition and {ATHENA_GETS_PER_OBJECT} GETs per object a statement "
        "reads; statements that read all of history read one partition a day). Glue: "
        f"{GLUE_CALLS_PER_STATEMENT} catalog calls a statement plus compaction's partition updates, "
        "beyond the free million.",
        "- Not in the table: storage of curated/ (Parquet, a fraction of raw/), KMS, data transfer.",
        "- Prices: " + "; ".join(f"{k}: <{v}>" for k, v in SOURCES.items()) + ".",
    ]
    return out


def measure(settings: Any, state_dir: Path) -> dict[str, dict[str, int]]:
    """Statements per stage of a cycle with new changes and of one with nothing new, on a small
    synthetic history in a space of its own on `settings`' emulator."""
    from datetime import UTC, datetime, timedelta

    from sales_ops.catalog.crawlers import LocalCrawler
    from sales_ops.curated.compaction import compact
    from sales_ops.curated.rollups import build_rollups
    from sales_ops.load.synthetic import ChangeStream, plan_changes, split_at, write_changes
    from sales_ops.query import DuckDBEngine
    from sales_ops.query.meter import CYCLE_STAGES, Meter, run_cycle
    from tests.harness import own_space, put_orders_table

    space = own_space(settings, state_dir, "cost")
    space = replace(space, table=space.bucket)  # a table of its own: the truth the sample compares to
    # A fixed time of day: the same dates and partition sizes (so the same fold decisions) any time.
    end = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
    older, newer = split_at(plan_changes(300, end - timedelta(days=3), end, seed=3), 0.1)
    stream = ChangeStream(seed=3)
    write_changes(space, older, stream)
    LocalCrawler(space).run()
    out: dict[str, dict[str, int]] = {}
    with DuckDBEngine(space) as engine:
        compact(space, engine)
        build_rollups(space, engine)
        write_changes(space, newer, stream)
        put_orders_table(space, stream.images.values())
        for kind in ("cycle", "idle"):  # the second one finds nothing new
            meter = Meter()
            run_cycle(space, engine, meter)
            used = meter.by_stage()
            out[kind] = {stage: used[stage].count if stage in used else 0 for stage in CYCLE_STAGES}
    return out


def main(argv: list[str]) -> None:
    if "--measure" in argv:
        import tempfile

        from tests.harness import running_stack

        with (
            tempfile.TemporaryDirectory(prefix="cost-measure-") as tmp,
            running_stack(Path(tmp) / "stack") as s,
        ):
            counts = measure(s, Path(tmp) / "space")
        COUNTS.write_text(json.dumps(counts, indent=1) + "\n")
        print(f"wrote {COUNTS.relative_to(ROOT)}: {counts}")
        return
    text = table()
    if "--write" not in argv:
        print(text)
        return
    doc = DOC.read_text()
    before, rest = doc.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(f"{before}{START}\n{text}\n{END}{after}")


if __name__ == "__main__":
    main(sys.argv[1:])
