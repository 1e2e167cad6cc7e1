"""What Firehose writes under raw/ and errors/: object bodies (compressed or not) and object names.

One place for both, used by the Firehose stand-in, the synthetic writer, quarantine and the
raw-objects sensor.

Bodies. Firehose compresses with the destination's `CompressionFormat` (the template's
`RawCompression`, GZIP by default) and names a GZIP object with a `.gz` extension
(https://docs.aws.amazon.com/firehose/latest/dev/s3-object-name.html: `<file extension>`);
errors/ objects are compressed the same way. Readers recognise gzip by its magic bytes, not by
the name or the setting, so an object reads the same whichever way it was written.

Names. Firehose names an object `<stream>-<stream version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><ext>`,
where the version "begins with 1 and increases by 1 for every configuration change" (same page).
So names do not sort by time: after the tenth change `-10-` sorts before `-9-`. Whatever must
follow delivery order compares `delivery_position(key)`, never the key.
"""

from __future__ import annotations

import gzip
import re
import zlib
from datetime import datetime

GZIP_MAGIC = b"\x1f\x8b"
EXTENSIONS = {"GZIP": ".gz", "UNCOMPRESSED": ""}

# <stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>[.ext]
_FIREHOSE_NAME = re.compile(
    r"^(?P<stream>.+?)-(?P<version>\d+)-(?P<at>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-(?P<rest>[^/]+)$"
)
# The same delivery time, found in an S3 path by SQL (Trino's and DuckDB's regexp_extract).
DELIVERED_AT_SQL_PATTERN = r"-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-[^/]*$"
_AT_FORMAT = "%Y-%m-%d-%H-%M-%S"


def is_gzip(body: bytes) -> bool:
    return body[:2] == GZIP_MAGIC


def decode_body(body: bytes) -> bytes:
    """The JSON-lines text of a raw or error object, gunzipped when it is gzip (raises on a
    corrupt or truncated gzip stream: zlib.error, EOFError or gzip.BadGzipFile)."""
    return gzip.decompress(body) if is_gzip(body) else body


def decode_prefix(body: bytes) -> bytes:
    """As much text as the first bytes of an object give (for readers that take a ranged GET)."""
    return zlib.decompressobj(wbits=31).decompress(body) if is_gzip(body) else body


def encode_body(text: bytes, compression: str) -> bytes:
    """What Firehose stores for `text` under `compression` (GZIP or UNCOMPRESSED)."""
    if compression not in EXTENSIONS:
        raise ValueError(f"unsupported compression {compression!r}: one of {', '.join(EXTENSIONS)}")
    return gzip.compress(text, compresslevel=6, mtime=0) if compression == "GZIP" else text


def object_name(stream: str, version: str | int, delivered: datetime, unique: str, compression: str) -> str:
    """Firehose's object name for a delivery at `delivered` (UTC)."""
    return f"{stream}-{version}-{delivered.strftime(_AT_FORMAT)}-{unique}{EXTENSIONS[compression]}"


def delivered_at(key: str) -> str | None:
    """The delivery time in a Firehose object name (`yyyy-MM-dd-HH-mm-ss`, sorts by time), or None."""
    match = _FIREHOSE_NAME.match(key.rsplit("/", 1)[-1])
    return match["at"] if match else None


def delivery_position(key: str, modified: datetime | None = None) -> str:
    """A string that sorts raw objects by (partition, delivery time, stream version, name).

    `key` is a full raw key (`raw/orders/dt=…/hour=…/<name>`). A name that is not Firehose's
    (a hand upload) takes its delivery time from `modified` (S3 LastModified), else sorts first
    in its partition. A position starts with "@", so that it is never mistaken for a key.
    """
    folder, _, name = key.rpartition("/")
    match = _FIREHOSE_NAME.match(name)
    if match:
        at, version = match["at"], int(match["version"])
    else:
        at, version = (modified.strftime(_AT_FORMAT) if modified else ""), 0
    return f"@{folder}/{at}/{version:010d}/{name}"


def position_folder(position: str) -> str:
    """The folder (`raw/orders/dt=…/hour=…`) a position belongs to."""
    return position.removeprefix("@").rsplit("/", 3)[0]
