"""Unit tests of the expected-result model (tests/support/expected.py) itself.

The end-to-end tests trust this model to say what Floe must write, so every
rule of the contract is pinned here on hand-written lines.
"""

from __future__ import annotations

import collections
import datetime
import gzip

import pytest

from support import expected as ex

NOW = 1_700_000_000.0
OK = b'{"event_uuid":"u1","event_name":"account:created","created_at":1700000000}'


def reason_of(line: bytes, max_record_size: int = ex.DEFAULT_MAX_RECORD_SIZE) -> str | None:
    """The reason code the model gives one line, or None when it is valid."""
    result = ex.expected_from_bytes(line + b"\n", "src", max_record_size=max_record_size, now=NOW)
    if result.rejected:
        return result.rejected[0][0]
    assert len(result.rows) == 1
    return None


@pytest.mark.parametrize(
    "line, reason",
    [
        (OK, None),
        # too_large wins over every other check, and counts bytes, not characters.
        (b"x" * 65, ex.TOO_LARGE),
        (b"{not json", ex.INVALID_JSON),
        (b'{"a":1} {"b":2}', ex.INVALID_JSON),
        (b'\xff{"event_uuid":"u"}', ex.INVALID_JSON),
        (b'{"event_uuid":"u","event_name":"a","created_at":NaN}', ex.INVALID_JSON),
        (b'{"event_uuid":"u","event_name":"a","created_at":1e400}', ex.INVALID_JSON),
        (b'{"event_uuid":"\\ud800","event_name":"a","created_at":1}', ex.INVALID_JSON),
        # A byte order mark starting the input is not part of the record.
        (b"\xef\xbb\xbf{}", ex.BAD_EVENT_UUID),
        (b"[1,2]", ex.NOT_OBJECT),
        (b'"text"', ex.NOT_OBJECT),
        (b"null", ex.NOT_OBJECT),
        (b"17", ex.NOT_OBJECT),
        (b'{"event_name":"a","created_at":1700000000}', ex.BAD_EVENT_UUID),
        (b'{"event_uuid":"","event_name":"a","created_at":1700000000}', ex.BAD_EVENT_UUID),
        (b'{"event_uuid":7,"event_name":"a","created_at":1700000000}', ex.BAD_EVENT_UUID),
        (b'{"event_uuid":"u","created_at":1700000000}', ex.BAD_EVENT_NAME),
        (b'{"event_uuid":"u","event_name":"","created_at":1700000000}', ex.BAD_EVENT_NAME),
        (b'{"event_uuid":"u","event_name":":created","created_at":1700000000}', ex.BAD_EVENT_NAME),
        (b'{"event_uuid":"u","event_name":["a"],"created_at":1700000000}', ex.BAD_EVENT_NAME),
        (b'{"event_uuid":"u","event_name":"a"}', ex.BAD_CREATED_AT),
        (b'{"event_uuid":"u","event_name":"a","created_at":"1700000000"}', ex.BAD_CREATED_AT),
        (b'{"event_uuid":"u","event_name":"a","created_at":true}', ex.BAD_CREATED_AT),
        (b'{"event_uuid":"u","event_name":"a","created_at":null}', ex.BAD_CREATED_AT),
        (b'{"event_uuid":"u","event_name":"a","created_at":946684800}', None),
        (b'{"event_uuid":"u","event_name":"a","created_at":946684799.999}', ex.CREATED_AT_OUT_OF_RANGE),
        (b'{"event_uuid":"u","event_name":"a","created_at":1700000000000}', ex.CREATED_AT_OUT_OF_RANGE),
        (b'{"event_uuid":"u","event_name":"a","created_at":1700086400}', None),
        (b'{"event_uuid":"u","event_name":"a","created_at":1700086400.001}', ex.CREATED_AT_OUT_OF_RANGE),
        # The first failing check decides: bad uuid before bad name before bad time.
        (b'{"event_uuid":"","event_name":":x","created_at":"no"}', ex.BAD_EVENT_UUID),
        (b'{"event_uuid":"u","event_name":":x","created_at":"no"}', ex.BAD_EVENT_NAME),
        # event_type is a partition value: no control character, 1..64 bytes trimmed.
        (b'{"event_uuid":"u","event_name":"  :x","created_at":1700000000}', ex.BAD_EVENT_NAME),
        (b'{"event_uuid":"u","event_name":"a\\tb","created_at":1700000000}', ex.BAD_EVENT_NAME),
        (b'{"event_uuid":"u","event_name":"a\\u0085","created_at":1700000000}', ex.BAD_EVENT_NAME),
        (b'{"event_uuid":"u","event_name":"' + b"t" * 65 + b'","created_at":1700000000}', ex.BAD_EVENT_NAME),
        (b'{"event_uuid":"u","event_name":" ' + b"t" * 64 + b' :x","created_at":1700000000}', None),
        (b'{"event_uuid":"u","event_name":"' + "注".encode() * 22 + b'","created_at":1700000000}', ex.BAD_EVENT_NAME),
        (b'{"event_uuid":"u","event_name":"' + "注".encode() * 21 + b'","created_at":1700000000}', None),
    ],
)
def test_reason_codes(line, reason):
    assert reason_of(line, max_record_size=64 if reason == ex.TOO_LARGE else 1024) == reason


def test_a_byte_order_mark_past_the_start_is_part_of_its_line():
    result = ex.expected_from_bytes(b"\xef\xbb\xbf" + OK + b"\n\xef\xbb\xbf" + OK + b"\n", "s", now=NOW)
    assert len(result.rows) == 1
    assert [(reason, position) for reason, position, _ in result.rejected] == [(ex.INVALID_JSON, "2")]


def test_size_limit_is_inclusive():
    assert reason_of(OK, max_record_size=len(OK)) is None
    assert reason_of(OK, max_record_size=len(OK) - 1) == ex.TOO_LARGE


def test_size_counts_bytes_not_characters():
    line = '{"event_uuid":"éééééééééé","event_name":"a","created_at":1e9}'.encode()
    assert (len(line.decode()), len(line)) == (61, 71)
    assert reason_of(line, max_record_size=64) == ex.TOO_LARGE
    assert reason_of(line, max_record_size=71) is None


def test_enrichment():
    line = (
        b'{"event_uuid":"u1","event_name":"payment:order:completed",'
        b'"created_at":1700000000.1234567,"amount":12.5,"items":[{"sku":"a"}],"note":null}'
    )
    result = ex.expected_from_bytes(line, "/data/in.jsonl", now=NOW)
    assert result.rows == {
        "u1": {
            "event_uuid": "u1",
            "event_name": "payment:order:completed",
            "event_type": "payment",
            "event_subtype": "order",
            "created_at": 1700000000.1234567,
            "created_datetime": 1_700_000_000_123_457,
            "payload": {"amount": 12.5, "items": [{"sku": "a"}], "note": None},
            "_source_id": "/data/in.jsonl",
            "_source_position": "1",
        }
    }


@pytest.mark.parametrize(
    "name, event_type, subtype",
    [
        ("account", "account", None),
        ("account:", "account", None),
        ("a::b", "a", None),
        ("a:b:c", "a", "b"),
        (" pay : x ", "pay", "x"),
        ("pay:  :x", "pay", None),
    ],
)
def test_event_name_parts(name, event_type, subtype):
    line = f'{{"event_uuid":"u","event_name":"{name}","created_at":1700000000}}'.encode()
    row = ex.expected_from_bytes(line, "s", now=NOW).rows["u"]
    assert (row["event_type"], row["event_subtype"]) == (event_type, subtype)


@pytest.mark.parametrize(
    "created_at, micros",
    [
        (b"1700000000", 1_700_000_000_000_000),
        (b"1700000000.5", 1_700_000_000_500_000),
        (b"1000000000.0000005", 1_000_000_000_000_001),  # half a microsecond rounds up
        (b"1000000000.0000004", 1_000_000_000_000_000),
        # Rounding happens on the f64 value: this literal is stored as ...0.00000047.
        (b"1700000000.0000004", 1_700_000_000_000_001),
        (b"1700000000.9999995", 1_700_000_001_000_000),
        (b"1.7e9", 1_700_000_000_000_000),
    ],
)
def test_created_datetime_rounding(created_at, micros):
    line = b'{"event_uuid":"u","event_name":"a","created_at":' + created_at + b"}"
    row = ex.expected_from_bytes(line, "s", now=NOW).rows["u"]
    assert row["created_datetime"] == micros
    assert isinstance(row["created_at"], float)


def test_payload_is_none_when_only_common_fields():
    assert ex.expected_from_bytes(OK, "s", now=NOW).rows["u1"]["payload"] is None


def test_large_integers_follow_serde_json():
    line = b'{"event_uuid":"u","event_name":"a","created_at":1700000000,"big":18446744073709551616,"max":18446744073709551615}'
    payload = ex.expected_from_bytes(line, "s", now=NOW).rows["u"]["payload"]
    assert payload == {"big": 1.8446744073709552e19, "max": 18446744073709551615}
    assert isinstance(payload["big"], float) and isinstance(payload["max"], int)


def test_lines_blanks_crlf_and_positions():
    data = b"\n".join(
        [
            OK + b"\r",  # 1: CRLF line ending
            b"",  # 2: empty, skipped
            b"  \t \r",  # 3: whitespace only, skipped
            b"\x0b",  # 4: vertical tab is not ASCII whitespace for Rust: a record
            b'{"event_uuid":"u2","event_name":"b","created_at":1700000001}',  # 5, no final newline
        ]
    )
    result = ex.expected_from_bytes(data, "s", now=NOW)
    assert sorted((r["event_uuid"], r["_source_position"]) for r in result.rows.values()) == [("u1", "1"), ("u2", "5")]
    assert result.rejected == [(ex.INVALID_JSON, "4", b"\x0b")]


def test_last_valid_record_wins():
    data = b"\n".join(
        [
            b'{"event_uuid":"u","event_name":"a:first","created_at":1700000000}',
            b'{"event_uuid":"v","event_name":"b","created_at":1700000000}',
            b'{"event_uuid":"u","event_name":"a:second","created_at":1700000000,"x":1}',
            b'{"event_uuid":"u","event_name":"","created_at":1700000000}',  # rejected: does not count
        ]
    )
    result = ex.expected_from_bytes(data, "s", now=NOW)
    assert result.rows["u"]["event_subtype"] == "second"
    assert result.rows["u"]["_source_position"] == "3"
    assert result.valid == 3 and result.duplicates == 1
    assert result.rejected_by_reason == collections.Counter({ex.BAD_EVENT_NAME: 1})
    assert list(result.rows) == ["v", "u"]  # dict order follows the winning lines


def test_identical_duplicates_keep_the_live_row_and_keep_first_keeps_all():
    data = b"\n".join(
        [
            b'{"event_uuid":"u","event_name":"a","created_at":1700000000,"x":1}',
            b'{"event_uuid":"u","event_name":"a","created_at":1700000000,"x":1}',  # identical
            b'{"event_uuid":"u","event_name":"a","created_at":1700000000,"x":2}',  # changed
            b'{"event_uuid":"u","event_name":"a","created_at":1700000000,"x":2}',  # identical to line 3
        ]
    )
    upsert = ex.expected_from_bytes(data, "s", now=NOW)
    assert upsert.rows["u"]["_source_position"] == "3"
    assert upsert.rows["u"]["payload"] == {"x": 2}
    assert (upsert.duplicates, upsert.identical) == (3, 2)
    first = ex.expected_from_bytes(data, "s", now=NOW, keep_first=True)
    assert first.rows["u"]["_source_position"] == "1"
    assert (first.duplicates, first.identical) == (3, 1)


def test_counts_by_day_type_use_utc_days_of_live_rows():
    data = b"\n".join(
        [
            b'{"event_uuid":"a","event_name":"x","created_at":1699919999.9999996}',  # rounds to next day
            b'{"event_uuid":"b","event_name":"x","created_at":1699919999}',  # 2023-11-13 23:59:59Z
            b'{"event_uuid":"c","event_name":"y:z","created_at":1699920000}',  # 2023-11-14 00:00:00Z
            b'{"event_uuid":"b","event_name":"x","created_at":1699919998}',  # duplicate, same day
        ]
    )
    result = ex.expected_from_bytes(data, "s", now=NOW)
    assert result.counts_by_day_type == collections.Counter(
        {
            (datetime.date(2023, 11, 13), "x"): 1,
            (datetime.date(2023, 11, 14), "x"): 1,
            (datetime.date(2023, 11, 14), "y"): 1,
        }
    )


def test_rejected_keeps_raw_bytes_and_positions():
    data = b'\n{"event_uuid":"u"\r\n' + OK + b"\n[]\n"
    result = ex.expected_from_bytes(data, "s", now=NOW)
    assert result.rejected == [(ex.INVALID_JSON, "2", b'{"event_uuid":"u"'), (ex.NOT_OBJECT, "4", b"[]")]


def test_gzip_file_matches_plain_file(tmp_path):
    data = OK + b"\n[]\n" + b'{"event_uuid":"u2","event_name":"b","created_at":1700000001}\n'
    plain = tmp_path / "in.jsonl"
    packed = tmp_path / "in.jsonl.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    a = ex.expected_from_file(plain, "same", now=NOW)
    b = ex.expected_from_file(packed, "same", now=NOW)
    assert a == b
    assert ex.expected_from_file(packed, None, now=NOW).rows["u1"]["_source_id"] == str(packed)


def test_default_now_is_the_current_time():
    future = int(datetime.datetime.now(datetime.timezone.utc).timestamp()) + 2 * 86_400
    line = f'{{"event_uuid":"u","event_name":"a","created_at":{future}}}'.encode()
    result = ex.expected_from_bytes(line, "s")
    assert [r[0] for r in result.rejected] == [ex.CREATED_AT_OUT_OF_RANGE]
