"""The lake contract: table names and locations, and the canonical record every source emits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from plantlake.config import LakeSettings

RECORD_SCHEMA_VERSION = 1
QUALITIES = ("Good", "Uncertain", "Bad")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Spark SQL type name
    nullable: bool
    doc: str


# The canonical telemetry record (schema version 1), as JSON on the telemetry topic.
TELEMETRY_RECORD: tuple[Column, ...] = (
    Column("schema_version", "int", False, "Version of this record layout."),
    Column("asset", "string", False, "Asset path site/line/asset; also the Kafka key."),
    Column("sensor", "string", False, "Sensor name within the asset."),
    Column("value", "double", True, "Reading as sent; null or NaN when the source had none."),
    Column("unit", "string", True, "Unit declared by the source (e.g. degF, bar)."),
    Column("quality", "string", False, "Good, Uncertain or Bad, from the protocol."),
    Column("event_time_ms", "long", False, "Source timestamp, epoch milliseconds UTC."),
    Column("receive_time_ms", "long", False, "When the edge process received it, epoch ms UTC."),
    Column("source_protocol", "string", False, "opcua, modbus, sparkplug or demo."),
    Column("source_node", "string", False, "Edge node or endpoint that produced it."),
    Column("sequence", "long", True, "Source sequence number, where the protocol has one."),
    Column("filter_version", "string", True, "Edge filter configuration that let it through."),
)


def record_errors(record: Mapping) -> list[str]:
    """Why a decoded JSON record is not a valid canonical record (empty when it is)."""
    errors = []
    known = {c.name for c in TELEMETRY_RECORD}
    for extra in sorted(set(record) - known):
        errors.append(f"unknown field {extra!r}")
    checks = {"int": int, "long": int, "double": (int, float), "string": str}
    for col in TELEMETRY_RECORD:
        value = record.get(col.name)
        if value is None:
            if not col.nullable:
                errors.append(f"{col.name} is missing")
            continue
        if isinstance(value, bool) or not isinstance(value, checks[col.type]):
            errors.append(f"{col.name} should be {col.type}, got {type(value).__name__}")
    if record.get("quality") is not None and record.get("quality") not in QUALITIES:
        errors.append(f"quality {record['quality']!r} is not one of {QUALITIES}")
    if record.get("schema_version") not in (None, RECORD_SCHEMA_VERSION):
        errors.append(f"schema_version {record['schema_version']} is not {RECORD_SCHEMA_VERSION}")
    value = record.get("value")
    if isinstance(value, float) and math.isinf(value):
        errors.append("value is infinite")
    return errors


@dataclass(frozen=True)
class TableRef:
    layer: str
    table: str
    key: tuple[str, ...]
    writer: str
    comment: str

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.table}"

    def path(self, lake: LakeSettings) -> str:
        return lake.table_path(self.layer, self.table)


BRONZE_TELEMETRY = TableRef(
    "bronze", "telemetry",
    key=("kafka_topic", "kafka_partition", "kafka_offset"),
    writer="plantlake pipeline run bronze",
    comment="Every parsed canonical record from Kafka, append only, with Kafka lineage.",
)  # fmt: skip
BRONZE_DEAD_LETTER = TableRef(
    "bronze", "dead_letter",
    key=("kafka_topic", "kafka_partition", "kafka_offset"),
    writer="plantlake pipeline run bronze",
    comment="Kafka records that did not parse as a canonical record, with the reason.",
)  # fmt: skip

TABLES: tuple[TableRef, ...] = (BRONZE_TELEMETRY, BRONZE_DEAD_LETTER)
