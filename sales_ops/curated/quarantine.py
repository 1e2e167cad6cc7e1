"""Raw objects the engine cannot read are moved aside, with their reason, so compaction goes on.

One malformed object under raw/ (a hand-made upload, a truncated write, a value of the wrong type)
made every compaction fail and nothing else could be compacted. Now compaction moves such an
object to `quarantine/<its raw key>` (S3 CopyObject with the reason in its metadata, then
DeleteObject of the original: nothing is lost), leaves it out, and carries on. The
`no_quarantined_objects` check fails while anything sits there, listing the keys and reasons; once
inspected, delete the object, or fix it and put it back under raw/.

Only objects that fail *on their own* are moved: each candidate is read whole here (gunzipped
when its first bytes are gzip's magic, as Firehose writes raw/ by default) and judged line by line
against the raw table's declared column types, as the openx JsonSerDe reads them. An engine error
that no single object explains moves nothing and fails the pass. Athena's bad-data errors
(HIVE_BAD_DATA, HIVE_CURSOR_ERROR) do not name the file, so there every object of the pass is a
candidate. The quarantine lies outside every prefix the bucket's lifecycle expires (errors/,
athena-results/): a quarantined object is kept until someone decides (docs/design.md §2.3).
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

from sales_ops.raw_objects import decode_body
from sales_ops.settings import RAW_PREFIX, Settings

QUARANTINE_PREFIX = "quarantine/"
# Where quarantine used to be: under errors/, which the lifecycle expires. Still listed, so the
# check names what is there before the lifecycle deletes it (move it to QUARANTINE_PREFIX).
LEGACY_PREFIX = "errors/quarantine/"
# DuckDB names the file it could not read (its message for read_json); Athena does not.
_FAILING_FILE = re.compile(r'(?:(?:Malformed JSON|JSON transform error) in|while reading) file "([^"]+)"')
# Athena's bad-data errors, and DuckDB's (some name no file). An error matching these moves only
# objects that fail on their own (malformed), so a broad match is safe.
_BAD_DATA = re.compile(
    r"HIVE_BAD_DATA|HIVE_CURSOR_ERROR|Malformed JSON|JSON transform error|Failed to decode gzip stream"
    r"|while reading file"  # DuckDB on a damaged gzip stream (maximum_object_size exceeded)
)
# Hive types whose values the JsonSerDe parses strictly (a string column takes any scalar).
_INTEGER_TYPES = {"tinyint", "smallint", "int", "integer", "bigint"}
_NUMBER_TYPES = {"float", "double"}


@dataclass(frozen=True)
class Quarantined:
    key: str  # where it is now
    source: str  # where it was, under raw/
    reason: str


def _value_error(value: Any, hive_type: str) -> str | None:
    """Why the JsonSerDe would refuse `value` for a column of `hive_type`, or None."""
    if value is None:
        return None
    kind = hive_type.lower()
    if kind in _INTEGER_TYPES:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind in _NUMBER_TYPES or kind.startswith("decimal"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    else:  # strings take any value (the SerDe keeps its text); nested types are not judged here
        ok = True
    return None if ok else f"{json.dumps(value)[:40]} is not a {kind}"


def malformed(settings: Settings, key: str, columns: dict[str, str] | None = None) -> str | None:
    """Why the raw object at `key` cannot be read on its own, or None if it can.

    `columns` (name → Hive type, the raw table's) also judges each value's type.
    """
    body = settings.client("s3").get_object(Bucket=settings.bucket, Key=key)["Body"].read()
    try:
        text = decode_body(body).decode("utf-8")
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        return f"not a whole gzip stream ({type(exc).__name__}: {exc})"
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
        for name, hive_type in (columns or {}).items():
            why = _value_error(value.get(name), hive_type)
            if why:
                return f"line {number}: {name} {why}"
    return None


def raw_columns(settings: Settings) -> dict[str, str]:
    """The raw table's declared columns and types ({} when it is not catalogued)."""
    from sales_ops.catalog import glue

    table = glue.get_table(settings, glue.RAW_TABLE)
    columns = (table or {}).get("StorageDescriptor", {}).get("Columns", [])
    return {c["Name"]: c["Type"] for c in columns}


def quarantine(settings: Settings, key: str, reason: str) -> Quarantined:
    """Move one raw object to quarantine/, its reason in the object's metadata."""
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
    neighbour) or none is named (Athena), every candidate key is checked on its own.
    """
    message = str(error)
    if not _BAD_DATA.search(message):
        return []
    prefix = f"s3://{settings.bucket}/"
    named = [m for m in _FAILING_FILE.findall(message) if m.startswith(prefix + RAW_PREFIX)]
    columns = raw_columns(settings)
    for keys in ([m[len(prefix) :] for m in named], candidates):
        found = [(k, why) for k in keys if (why := malformed(settings, k, columns))]
        if found:
            return [quarantine(settings, k, why) for k, why in found]
    return []


def list_quarantined(settings: Settings) -> list[Quarantined]:
    s3 = settings.client("s3")
    out = []
    for prefix in (QUARANTINE_PREFIX, LEGACY_PREFIX):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                meta = s3.head_object(Bucket=settings.bucket, Key=obj["Key"]).get("Metadata", {})
                source = meta.get("source-key", obj["Key"][len(prefix) :])
                reason = meta.get("reason", "?")
                if prefix == LEGACY_PREFIX:
                    reason += f" (the lifecycle expires {LEGACY_PREFIX}: move it to {QUARANTINE_PREFIX})"
                out.append(Quarantined(obj["Key"], source, reason))
    return out
