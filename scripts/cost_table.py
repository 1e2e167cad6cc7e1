"""The monthly cost table of docs/deploy-aws.md, computed from infra/template.yaml's defaults.

    python scripts/cost_table.py           # print the table
    python scripts/cost_table.py --write   # replace it in docs/deploy-aws.md

Region us-east-1, on-demand list prices as recorded in PRICES below (price date: PRICE_DATE); a
month is 730 hours. The model per change: one DynamoDB write of an item under 1 KB, one stream
record, one Kinesis record, one raw JSON line of about RECORD_KB. tests/test_cost.py checks that the
doc shows exactly what this prints.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sales_ops.deploy import read_template  # noqa: E402

DOC = ROOT / "docs" / "deploy-aws.md"
START, END = "<!-- cost-table:start -->", "<!-- cost-table:end -->"
PRICE_DATE = "2026-12-01"
HOURS = 730
SECONDS = HOURS * 3600
RECORD_KB = 1.0  # a change as JSON (stream record, Kinesis record, raw line)
GZIP_RATIO = 0.15  # raw JSON lines compress about 7x
RATES = (0.0, 10.0, 1000.0)  # changes per second: idle, 10/s, 1,000/s
PRICES = {
    "kinesis_shard_hour": 0.015,
    "kinesis_put_unit_million": 0.014,
    "dynamodb_write_million": 0.625,
    "pipes_request_million": 0.40,
    "firehose_gb": 0.029,  # ingestion, records rounded up to 5 KB
    "firehose_dp_gb": 0.02,
    "firehose_dp_objects_thousand": 0.005,
    "lambda_request_million": 0.20,
    "lambda_gb_second": 0.0000166667,
    "s3_gb_month": 0.023,
    "s3_put_thousand": 0.005,
    "athena_tb": 5.0,
    "athena_min_mb": 10,
    "cloudwatch_alarm": 0.10,
    "cloudwatch_custom_metric": 0.30,
}
ROLLUP_QUERIES_PER_HOUR = 6  # 3 INSERTs + 3 counts, hourly schedule
REFRESH_QUERIES = 4  # compaction (touched dates, insert) + checks, per sensor-triggered refresh
DASHBOARD_QUERIES, DASHBOARD_HOURS_PER_DAY = 7, 8


def defaults(template: dict[str, Any]) -> dict[str, float]:
    return {k: float(v["Default"]) for k, v in template["Parameters"].items() if v.get("Type") == "Number"}


def monthly(rate: float, p: dict[str, float], template: dict[str, Any]) -> dict[str, float]:
    """Service -> dollars a month at `rate` changes/s with the template's defaults."""
    cost: dict[str, float] = {}
    shards = max(p["KinesisShardCount"], math.ceil(rate / 1000), math.ceil(rate * RECORD_KB / 1024))
    changes = rate * SECONDS
    cost["Kinesis Data Streams"] = (
        shards * HOURS * PRICES["kinesis_shard_hour"] + changes / 1e6 * PRICES["kinesis_put_unit_million"]
    )
    cost["DynamoDB (on-demand writes)"] = changes / 1e6 * PRICES["dynamodb_write_million"]
    # A Pipe batch holds min(batch size, what arrives in the batching window); each 64 KB is a request.
    batch = min(p["PipeBatchSize"], max(1.0, rate * p["PipeBatchingWindowSeconds"]))
    requests = (changes / batch) * math.ceil(batch * RECORD_KB / 64) if rate else 0
    cost["EventBridge Pipes"] = requests / 1e6 * PRICES["pipes_request_million"]
    # Firehose: ingestion rounded to 5 KB a record; dynamic partitioning per GB and per object. Each
    # active dt/hour partition flushes at least every buffer interval.
    gb = changes * RECORD_KB / 1024**2
    flushes = SECONDS / p["FirehoseBufferSeconds"] if rate else 0
    objects = max(flushes, gb * 1024 / p["FirehoseBufferMB"])
    cost["Firehose"] = (
        changes * 5 / 1024**2 * PRICES["firehose_gb"]
        + gb * PRICES["firehose_dp_gb"]
        + objects / 1000 * PRICES["firehose_dp_objects_thousand"]
    )
    # Lambda: one invocation per 1 MB or 60 s of records (the processor's buffer), ~0.2 s at 256 MB.
    invocations = max(SECONDS / 60, gb * 1024) if rate else 0
    cost["Lambda"] = (
        invocations / 1e6 * PRICES["lambda_request_million"]
        + invocations * 0.2 * 0.25 * PRICES["lambda_gb_second"]
    )
    # S3: the month's raw data (average over the month: half of it), PUTs of Firehose's objects.
    cost["S3"] = gb * GZIP_RATIO / 2 * PRICES["s3_gb_month"] + objects / 1000 * PRICES["s3_put_thousand"]
    # Athena: 10 MB at least per query. Hourly rollups always; a refresh per minute while data flows.
    queries = ROLLUP_QUERIES_PER_HOUR * HOURS + (REFRESH_QUERIES * 60 * HOURS if rate else 0)
    scanned_tb = queries * PRICES["athena_min_mb"] / 1024**2 + gb * GZIP_RATIO / 1024 * 2  # raw read twice
    cost["Athena (Dagster)"] = scanned_tb * PRICES["athena_tb"]
    alarms = sum(1 for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm")
    cost["CloudWatch alarms + metric"] = (
        alarms * PRICES["cloudwatch_alarm"] + PRICES["cloudwatch_custom_metric"]
    )
    cost["Glue crawler"] = 0.0  # no schedule; compaction registers partitions (one crawl at setup)
    return cost


def dashboard_month(cache_seconds: float) -> float:
    """Athena for a dashboard tab open DASHBOARD_HOURS_PER_DAY a day, every day of a month."""
    refreshes = DASHBOARD_HOURS_PER_DAY * 3600 / cache_seconds * 30
    return refreshes * DASHBOARD_QUERIES * PRICES["athena_min_mb"] / 1024**2 * PRICES["athena_tb"]


def table() -> str:
    from sales_ops.dashboard.app import ATHENA_CACHE_SECONDS

    template = read_template(ROOT / "infra" / "template.yaml")
    params = defaults(template)
    columns = [monthly(rate, params, template) for rate in RATES]
    lines = [
        f"Dollars a month, us-east-1 list prices of {PRICE_DATE}, template defaults "
        f"({params['KinesisShardCount']:.0f} shard, Pipe batch {params['PipeBatchSize']:.0f}, "
        f"Firehose {params['FirehoseBufferSeconds']:.0f} s / {params['FirehoseBufferMB']:.0f} MB), "
        f"{RECORD_KB:.0f} KB a change. Computed by `scripts/cost_table.py`.",
        "",
        "| service | idle | 10 changes/s | 1,000 changes/s |",
        "|---|---:|---:|---:|",
    ]
    for service in columns[0]:
        lines.append(f"| {service} | " + " | ".join(f"{c[service]:,.2f}" for c in columns) + " |")
    totals = [sum(c.values()) for c in columns]
    lines.append("| **total** | " + " | ".join(f"**{t:,.2f}**" for t in totals) + " |")
    tab = dashboard_month(ATHENA_CACHE_SECONDS)
    lines += [
        "",
        f"A dashboard tab open {DASHBOARD_HOURS_PER_DAY} h a day adds {tab:,.2f} a month in Athena "
        f"({DASHBOARD_QUERIES} queries per refresh, cached {ATHENA_CACHE_SECONDS:.0f} s, none while the tab "
        f"is hidden); with the former 30 s cache it was {dashboard_month(30):,.2f}.",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
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
