"""The table contract Floe writes, as PyIceberg objects.

The smoke test creates tables with these to prove the readers work before Floe
exists; end-to-end tests can compare the schema and spec Floe wrote with them
(`table.schema() == events_schema()` compares ids, names, types, required).
"""

from __future__ import annotations

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    BinaryType,
    DoubleType,
    NestedField,
    StringType,
    TimestamptzType,
)

NAMESPACE = "analytics"
EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"


def events_schema() -> Schema:
    """analytics.events: field ids 1-10, `event_uuid` is the identifier field."""
    return Schema(
        NestedField(1, "event_uuid", StringType(), required=True),
        NestedField(2, "event_name", StringType(), required=True),
        NestedField(3, "event_type", StringType(), required=True),
        NestedField(4, "event_subtype", StringType(), required=False),
        NestedField(5, "created_at", DoubleType(), required=True),
        NestedField(6, "created_datetime", TimestamptzType(), required=True),
        NestedField(7, "payload", StringType(), required=False),
        NestedField(8, "_ingested_at", TimestamptzType(), required=True),
        NestedField(9, "_source_id", StringType(), required=True),
        NestedField(10, "_source_position", StringType(), required=True),
        identifier_field_ids=[1],
    )


def events_spec() -> PartitionSpec:
    """day(created_datetime) then identity(event_type); partition field ids from 1000."""
    return PartitionSpec(
        PartitionField(source_id=6, field_id=1000, transform=DayTransform(), name="created_datetime_day"),
        PartitionField(source_id=3, field_id=1001, transform=IdentityTransform(), name="event_type"),
    )


def rejected_schema() -> Schema:
    """analytics.events_rejected: unpartitioned, raw bytes kept as they came."""
    return Schema(
        NestedField(1, "reason", StringType(), required=True),
        NestedField(2, "message", StringType(), required=True),
        NestedField(3, "raw", BinaryType(), required=True),
        NestedField(4, "_ingested_at", TimestamptzType(), required=True),
        NestedField(5, "_source_id", StringType(), required=True),
        NestedField(6, "_source_position", StringType(), required=True),
    )
