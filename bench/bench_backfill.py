"""Backfill benchmark: 200,000 orders from a DynamoDB export into an empty lake, then a second one.

The export is built directly in AWS's layout (manifest-summary.json, manifest-files.json,
data/*.json.gz of `{"Item": …}` lines in DynamoDB JSON) from the mock shop's order lifecycles
(sales_ops.load.synthetic), and written straight to the emulator's S3: writing 200k items through
moto's DynamoDB and exporting them would take far too long. Everything after that is the real
thing: `apply_export` reads the export from S3, compares it with the lake, writes the baseline and
compacts with DuckDB over the emulator's S3, in a child process whose peak RSS is the memory figure.

1. bootstrap: the lake is empty, every order is missing, all become baseline rows and are merged;
2. again: a newer export of the same table: everything is compared, nothing is written.

    .venv/bin/python bench/bench_backfill.py [--orders 200000]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_compaction import dataset, emulator, mib  # noqa: E402

from sales_ops.backfill import apply_export  # noqa: E402
from sales_ops.backfill.export import EXPORT_PREFIX, ExportInfo  # noqa: E402
from sales_ops.load.synthetic import ChangeStream, plan_changes  # noqa: E402
from sales_ops.query import DuckDBEngine  # noqa: E402
from sales_ops.settings import Settings  # noqa: E402

ITEMS_PER_FILE = 50_000


def write_export(settings: Settings, items: list[dict], at: datetime) -> ExportInfo:
    """An export of `items` (DynamoDB JSON) in AWS's layout; returns its description."""
    export_id = f"{int(at.timestamp() * 1000)}-{uuid.uuid4().hex[:8]}"
    arn = f"arn:aws:dynamodb:{settings.region}:{settings.account}:table/{settings.table}/export/{export_id}"
    root = f"{EXPORT_PREFIX}/AWSDynamoDB/{export_id}"
    s3 = settings.client("s3")
    files = []
    for start in range(0, len(items), ITEMS_PER_FILE):
        chunk = items[start : start + ITEMS_PER_FILE]
        body = gzip.compress("".join(json.dumps({"Item": i}) + "\n" for i in chunk).encode())
        key = f"{root}/data/{uuid.uuid4().hex}.json.gz"
        s3.put_object(Bucket=settings.bucket, Key=key, Body=body)
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        files.append({"itemCount": len(chunk), "md5Checksum": md5, "etag": md5, "dataFileS3Key": key})
    s3.put_object(
        Bucket=settings.bucket,
        Key=f"{root}/manifest-files.json",
        Body="".join(json.dumps(f) + "\n" for f in files).encode(),
    )
    summary = {
        "version": "2020-06-30",
        "exportArn": arn,
        "exportTime": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "manifestFilesS3Key": f"{root}/manifest-files.json",
        "itemCount": len(items),
        "outputFormat": "DYNAMODB_JSON",
        "exportType": "FULL_EXPORT",
    }
    s3.put_object(
        Bucket=settings.bucket, Key=f"{root}/manifest-summary.json", Body=json.dumps(summary).encode()
    )
    return ExportInfo(arn, "COMPLETED", at, settings.bucket, EXPORT_PREFIX, len(items))


def child_apply(args: list[str]) -> None:
    endpoint, bucket, database, state_dir, arn, at = args
    settings = Settings.from_env(
        "local", env={"SALES_OPS_ENDPOINT": endpoint, "SALES_OPS_STATE_DIR": state_dir}
    )
    settings = replace(settings, bucket=bucket, database=database)
    info = ExportInfo(arn, "COMPLETED", datetime.fromisoformat(at), bucket, EXPORT_PREFIX)
    with DuckDBEngine(settings) as engine:
        report = apply_export(settings, engine, info)
    out = report.as_dict()
    out["merge"] = None if report.merge is None else {"partitions": len(report.merge.partitions_rewritten)}
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so it would report the parent's
    # peak (the planned history of 200k orders) rather than this process's own.
    status = Path("/proc/self/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process alone (DuckDB runs in it)
    out |= {"peak_rss_kib": peak, "cpu_seconds": usage.ru_utime + usage.ru_stime}
    print(json.dumps(out, default=str))


def run_child(settings: Settings, info: ExportInfo) -> tuple[dict, float]:
    cmd = [sys.executable, __file__, "--child-apply", settings.endpoint_url or "", settings.bucket]
    cmd += [settings.database, str(settings.state_dir), info.arn, info.export_time.isoformat()]
    started = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.monotonic() - started
    return json.loads(out.splitlines()[-1]), wall


def show(label: str, report: dict, wall: float) -> None:
    print(
        f"  {label}: {report['seconds']:.1f}s ({wall:.1f}s with process start); {report['export_items']:,} "
        f"items compared, {report['rows_written']:,} baseline rows written; "
        f"read {mib(report['bytes_read'])}, wrote {mib(report['bytes_written'])}; merge: {report['merge']}"
    )
    print(
        f"    CPU {report['cpu_seconds']:.1f}s; peak memory (RSS of the backfilling process, DuckDB "
        f"included): {report['peak_rss_kib'] / 1024:,.0f} MiB; load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--child-apply", nargs=6)
    args = parser.parse_args()
    if args.child_apply:
        child_apply(args.child_apply)
        return
    print(f"bench_backfill on {os.cpu_count()} CPUs; export built in AWS's layout from synthetic orders")
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    stream = ChangeStream(seed=42)
    changes = plan_changes(args.orders, end - timedelta(days=45), end, seed=42)
    for _ in stream.records(changes):  # the table's final state, item by item (DynamoDB JSON)
        pass
    items = list(stream.images.values())
    with emulator() as root:
        settings = dataset(root, "backfill")
        first = write_export(settings, items, end)
        export_bytes = sum(
            o["Size"]
            for o in settings.client("s3").list_objects_v2(Bucket=settings.bucket, Prefix=EXPORT_PREFIX)[
                "Contents"
            ]
        )
        print(
            f"\n== backfill of {len(items):,} live orders ({args.orders:,} created), "
            f"export {mib(export_bytes)} =="
        )
        report, wall = run_child(settings, first)
        show("bootstrap (empty lake)", report, wall)
        second = write_export(settings, items, end + timedelta(minutes=5))
        report, wall = run_child(settings, second)
        show("second backfill (nothing to repair)", report, wall)


if __name__ == "__main__":
    main()
