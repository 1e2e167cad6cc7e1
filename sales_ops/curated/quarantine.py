"""Raw objects the engine cannot read are moved aside, with their reason, so compaction goes on.

One malformed object under raw/ (a hand-made upload, a truncated write) made every compaction fail
with "Malformed JSON" and nothing else could be compacted. Now compaction moves such an object to
`errors/quarantine/<its raw key>` (S3 CopyObject with the reason in its metadata, then DeleteObject
of the original: nothing is lost), leaves it out, and carries on. The `no_quarantined_objects`
check fails while anything sits there, listing the keys and reasons; once inspected, delete the
object, or fix it and put it back under raw/.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sales_ops.settings import RAW_PREFIX, Settings

QUARANTINE_PREFIX = "errors/quarantine/"
# DuckDB names the file it could not read (its message for read_json); Athena's HIVE_BAD_DATA too.
_FAILING_FILE = re.compile(r'(?:Malformed JSON|JSON transform error) in file "([^"]+)"')
_BAD_DATA = re.compile(r"HIVE_BAD_DATA|HIVE_CURSOR_ERROR|Malformed JSON|JSON transform error")


@dataclass(frozen=True)
class Quarantined:
    key: str  # where it is now
    source: str  # where it was, under raw/
    reason: str


def malformed(settings: Settings, key: str) -> str | None:
    """Why the raw object at `key` is not newline-delimited JSON objects, or None if it is."""
    body = settings.client("s3").get_object(Bucket=settings.bucket, Key=key)["Body"].read()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (byte {exc.start})"
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            return f"line {number}: not JSON ({exc.msg})"
        if not isinstance(value, dict):
            return f"line {number}: a JSON {type(value).__name__}, not an object"
    return None


def quarantine(settings: Settings, key: str, reason: str) -> Quarantined:
    """Move one raw object to errors/quarantine/, its reason in the object's metadata."""
    s3 = settings.client("s3")
    target = QUARANTINE_PREFIX + key
    ascii_reason = reason.encode("ascii", "replace").decode()[:1024]  # S3 metadata is ASCII
    s3.copy_object(
        Bucket=settings.bucket,
        Key=target,
        CopySource={"Bucket": settings.bucket, "Key": key},
        Metadata={"reason": ascii_reason, "source-key": key},
        MetadataDirective="REPLACE",
    )
    s3.delete_object(Bucket=settings.bucket, Key=key)
    return Quarantined(target, key, reason)


def quarantine_unreadable(settings: Settings, error: Exception, candidates: list[str]) -> list[Quarantined]:
    """After the engine failed on bad data: quarantine the objects at fault; [] if it was not that.

    The file the engine names is checked first; if it reads fine (DuckDB sometimes names a
    neighbour), every candidate key is checked.
    """
    message = str(error)
    if not _BAD_DATA.search(message):
        return []
    prefix = f"s3://{settings.bucket}/"
    named = [m for m in _FAILING_FILE.findall(message) if m.startswith(prefix + RAW_PREFIX)]
    for keys in ([m[len(prefix) :] for m in named], candidates):
        found = [(k, why) for k in keys if (why := malformed(settings, k))]
        if found:
            return [quarantine(settings, k, why) for k, why in found]
    return []


def list_quarantined(settings: Settings) -> list[Quarantined]:
    s3 = settings.client("s3")
    out = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=QUARANTINE_PREFIX)
    for page in pages:
        for obj in page.get("Contents", []):
            meta = s3.head_object(Bucket=settings.bucket, Key=obj["Key"]).get("Metadata", {})
            source = meta.get("source-key", obj["Key"][len(QUARANTINE_PREFIX) :])
            out.append(Quarantined(obj["Key"], source, meta.get("reason", "?")))
    return out
