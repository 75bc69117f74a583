"""Independent model of what Floe must write for a JSON Lines input file.

End-to-end tests feed a file to Floe, then compare what the readers return with
what this module computes from the same file. It implements the record contract
on its own, without importing any Floe code, so that a bug in Floe cannot hide
behind the same bug in the expectation.

The contract, in the order the checks run (the first failing check decides the
reason code):

1. The file (gunzipped when its name ends in ``.gz``) is split on ``\\n``; one
   trailing ``\\r`` is stripped, and a UTF-8 byte order mark at the very start
   of the input is not part of the first line. Lines that are empty or only ASCII whitespace
   (space, tab, LF, FF, CR: Rust's ``u8::is_ascii_whitespace``) are skipped,
   they are not records. Line numbers are 1-based physical line numbers.
2. ``too_large``: the line (after stripping the ``\\r``) is longer than
   ``max_record_size`` bytes.
3. ``invalid_json``: not UTF-8, or not one JSON value (as strict as
   ``serde_json``: no NaN/Infinity, no numbers out of f64 range, no unpaired
   surrogate escapes). Integers outside i64/u64 become floats, as in serde_json.
   Floats are parsed correctly rounded: Floe needs serde_json's
   ``float_roundtrip`` feature to get the same ``created_at`` bits.
4. ``not_object``: valid JSON but not an object.
5. ``bad_event_uuid``: missing, not a string, or empty.
6. ``bad_event_name``: missing, not a string, or its first ``:``-part (the
   ``event_type``, a partition value) holds a control character (Unicode
   category Cc), or is empty or longer than 64 UTF-8 bytes once the white
   space around it is trimmed.
7. ``bad_created_at``: missing or not a JSON number (``true`` is not a number,
   nor is ``"1700000000"``).
8. ``created_at_out_of_range``: below 946684800 (2000-01-01) or more than one
   day after the ingestion time.

A key sent twice in one object takes its last value (as ``json.loads`` does).
Valid records are enriched (see :func:`enrich`) and deduplicated: within one
run the last valid record per ``event_uuid`` wins, with its own line number.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import gzip
import json
import math
import time
import unicodedata
from pathlib import Path
from typing import Any

DEFAULT_MAX_RECORD_SIZE = 1_048_576
# 2000-01-01T00:00:00Z: anything older is taken as a unit mistake (ms, or 0).
MIN_CREATED_AT = 946_684_800
# Producers' clocks may run ahead, but not by more than a day.
MAX_FUTURE_SECONDS = 86_400
COMMON_FIELDS = ("event_uuid", "event_name", "created_at")
# The longest event_type in UTF-8 bytes (a partition value: folder names).
MAX_EVENT_TYPE_BYTES = 64
# Unicode White_Space, as Rust's str::trim strips it (Python's str.strip()
# strips U+001C..U+001F too).
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
BOM = b"\xef\xbb\xbf"

# Reason codes, exactly as Floe writes them into `events_rejected.reason`.
TOO_LARGE = "too_large"
INVALID_JSON = "invalid_json"
NOT_OBJECT = "not_object"
BAD_EVENT_UUID = "bad_event_uuid"
BAD_EVENT_NAME = "bad_event_name"
BAD_CREATED_AT = "bad_created_at"
CREATED_AT_OUT_OF_RANGE = "created_at_out_of_range"
REASONS = (
    TOO_LARGE,
    INVALID_JSON,
    NOT_OBJECT,
    BAD_EVENT_UUID,
    BAD_EVENT_NAME,
    BAD_CREATED_AT,
    CREATED_AT_OUT_OF_RANGE,
)

# What Rust's `u8::is_ascii_whitespace` accepts (note: no vertical tab \x0b).
_ASCII_WHITESPACE = frozenset(b" \t\n\x0c\r")


class Rejected(Exception):
    """A record that fails the contract; `reason` is the reason code."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass
class Expected:
    """What the table and the rejected table must hold after one run over a file.

    rows: event_uuid -> enriched row (see `enrich`), the last valid record per key.
    rejected: (reason, source_position, raw line bytes) in file order.
    rejected_by_reason: Counter of reason codes.
    counts_by_day_type: Counter of live rows keyed by (UTC date, event_type).
    valid: number of valid records before deduplication.
    duplicates: valid records that did not become the live row of their key.
    identical: of those, records identical to the live row when they came.
    """

    rows: dict[str, dict[str, Any]]
    rejected: list[tuple[str, str, bytes]]
    rejected_by_reason: collections.Counter
    counts_by_day_type: collections.Counter
    valid: int
    duplicates: int
    identical: int = 0


def is_blank(line: bytes) -> bool:
    """True for a line that is empty or holds only ASCII whitespace: not a record."""
    return all(b in _ASCII_WHITESPACE for b in line)


def iter_lines(data: bytes):
    """Yields (line_number, line_bytes) for every non-blank line, CR stripped."""
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM):]
        if not is_blank(line):
            yield number, line


def _reject_constant(name: str):
    # Python accepts NaN/Infinity/-Infinity; serde_json does not.
    raise ValueError(f"non-standard JSON constant {name}")


def _strict_float(text: str) -> float:
    # Python turns 1e400 into inf; serde_json reports "number out of range".
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text}")
    return value


def _serde_int(text: str) -> int | float:
    # serde_json keeps integers that fit i64 or u64 and turns larger ones into f64
    # (an error when even f64 overflows). Mirror that so payloads compare equal.
    value = int(text)
    if -(2**63) <= value < 2**64:
        return value
    try:
        return float(value)
    except OverflowError as err:
        raise ValueError(f"number out of range: {text}") from err


def _has_lone_surrogate(value: Any) -> bool:
    # Python decodes "\ud800" to a lone surrogate; serde_json rejects it.
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    return False


def parse_json(line: bytes) -> Any:
    """Parses one record as strictly as serde_json does; raises Rejected(invalid_json)."""
    try:
        text = line.decode("utf-8")
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_strict_float,
            parse_int=_serde_int,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise Rejected(INVALID_JSON) from err
    if _has_lone_surrogate(value):
        raise Rejected(INVALID_JSON)
    return value


def is_json_number(value: Any) -> bool:
    """A JSON number after json.loads: int or float, but bool is not a number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(line: bytes, max_record_size: int, now: float) -> dict[str, Any]:
    """Returns the parsed object, or raises Rejected with the first failing reason."""
    if len(line) > max_record_size:
        raise Rejected(TOO_LARGE)
    obj = parse_json(line)
    if not isinstance(obj, dict):
        raise Rejected(NOT_OBJECT)
    uuid = obj.get("event_uuid")
    if not isinstance(uuid, str) or uuid == "":
        raise Rejected(BAD_EVENT_UUID)
    name = obj.get("event_name")
    if not isinstance(name, str):
        raise Rejected(BAD_EVENT_NAME)
    first = name.split(":")[0]
    event_type = first.strip(WHITE_SPACE)
    if (
        any(unicodedata.category(c) == "Cc" for c in first)
        or event_type == ""
        or len(event_type.encode("utf-8")) > MAX_EVENT_TYPE_BYTES
    ):
        raise Rejected(BAD_EVENT_NAME)
    created_at = obj.get("created_at")
    if not is_json_number(created_at):
        raise Rejected(BAD_CREATED_AT)
    created = float(created_at)
    if created < MIN_CREATED_AT or created > now + MAX_FUTURE_SECONDS:
        raise Rejected(CREATED_AT_OUT_OF_RANGE)
    return obj


def created_datetime_micros(created_at: float) -> int:
    """Microseconds since the epoch, rounded half up, computed in f64 like Floe."""
    return math.floor(created_at * 1_000_000 + 0.5)


def micros_to_date(micros: int) -> datetime.date:
    """The UTC calendar day of a microsecond timestamp (the `day()` partition)."""
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (epoch + datetime.timedelta(microseconds=micros)).date()


def enrich(obj: dict[str, Any], source_id: str, line_number: int) -> dict[str, Any]:
    """The row Floe writes for a valid object (every column but `_ingested_at`).

    `payload` is a dict (or None when no field is left): tests compare payloads
    after json.loads, never as text, because key order and number formatting
    of the JSON text are Floe's choice.
    """
    parts = [p.strip(WHITE_SPACE) for p in obj["event_name"].split(":")]
    created_at = float(obj["created_at"])
    payload = {k: v for k, v in obj.items() if k not in COMMON_FIELDS}
    return {
        "event_uuid": obj["event_uuid"],
        "event_name": obj["event_name"],
        "event_type": parts[0],
        "event_subtype": parts[1] if len(parts) > 1 and parts[1] != "" else None,
        "created_at": created_at,
        "created_datetime": created_datetime_micros(created_at),
        "payload": payload or None,
        "_source_id": source_id,
        "_source_position": str(line_number),
    }


def read_input(path: str | Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in `.gz`."""
    path = Path(path)
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def same_body(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two enriched rows are identical duplicates: same event_name,
    created_at and payload (Floe compares a hash of exactly these)."""
    return (a["event_name"], a["created_at"], a["payload"]) == (b["event_name"], b["created_at"], b["payload"])


def expected_from_bytes(
    data: bytes,
    source_id: str,
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    now: float | None = None,
    keep_first: bool = False,
) -> Expected:
    """Applies the contract to already decompressed JSON Lines bytes.

    Duplicates (same event_uuid): an identical body keeps the live row; a
    changed body replaces it (last writer wins), or is skipped with
    `keep_first` (dedup mode keep-first).
    """
    now = time.time() if now is None else now
    identical = 0
    rows: dict[str, dict[str, Any]] = {}
    rejected: list[tuple[str, str, bytes]] = []
    valid = 0
    for number, line in iter_lines(data):
        try:
            obj = validate(line, max_record_size, now)
        except Rejected as rej:
            rejected.append((rej.reason, str(number), line))
            continue
        valid += 1
        row = enrich(obj, source_id, number)
        live = rows.get(row["event_uuid"])
        if live is not None and same_body(live, row):
            # An identical duplicate: the live row (and its line number) stays.
            identical += 1
            continue
        if live is not None and keep_first:
            continue
        # A changed body: last writer wins. Drop the older entry so dict order
        # follows the winners' lines.
        rows.pop(row["event_uuid"], None)
        rows[row["event_uuid"]] = row
    by_day_type = collections.Counter(
        (micros_to_date(r["created_datetime"]), r["event_type"]) for r in rows.values()
    )
    return Expected(
        rows=rows,
        rejected=rejected,
        rejected_by_reason=collections.Counter(reason for reason, _, _ in rejected),
        counts_by_day_type=by_day_type,
        valid=valid,
        duplicates=valid - len(rows),
        identical=identical,
    )


def expected_from_file(
    path: str | Path,
    source_id: str | None = None,
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    now: float | None = None,
    keep_first: bool = False,
) -> Expected:
    """What Floe must write after ingesting `path` (plain or .gz JSON Lines).

    source_id: the path string exactly as passed to floe (defaults to str(path)).
    now: the ingestion time in Unix seconds (defaults to the current time); the
    upper bound of `created_at` is `now + 86400`.
    """
    source = str(path) if source_id is None else source_id
    return expected_from_bytes(read_input(path), source, max_record_size, now, keep_first)
