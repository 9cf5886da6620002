"""plantlake validate over a tiny lake: the failing rule and row are found, missing tables skipped."""

from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql.types import StructField, StructType, _parse_datatype_string

from plantlake.core.contracts import (
    GOLD_TELEMETRY_1M,
    GOLD_TELEMETRY_5M,
    GOLD_TWIN_STATE,
    SILVER_TELEMETRY,
    SILVER_TELEMETRY_COLUMNS,
)
from plantlake.pipelines.jobs.validate import validate_lake
from plantlake.pipelines.transforms.validation_report import SKIPPED_MISSING

pytestmark = pytest.mark.spark

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
TWIN_STATE_SCHEMA = (
    "asset string, sensor string, value double, unit string, event_time timestamp, "
    "quality string, status string, status_reason string"
)


def _silver_row(asset, sensor, asset_class, quantity, value, unit, offset_s):
    event = NOW - timedelta(seconds=offset_s)
    return {
        "asset": asset, "sensor": sensor, "asset_class": asset_class, "quantity": quantity,
        "value": value, "unit": unit, "source_value": value, "source_unit": unit,
        "quality": "Good", "event_time": event, "event_time_ms": int(event.timestamp() * 1000),
        "receive_time": event + timedelta(milliseconds=40), "source_protocol": "opcua",
        "source_node": "opc.tcp://127.0.0.1:4840", "sequence": offset_s, "filter_version": "1",
        "dq_warnings": [], "kafka_topic": "plantlake.telemetry", "kafka_partition": 0,
        "kafka_offset": offset_s, "bronze_ingest_time": NOW, "silver_time": NOW,
        "released_by": None,
    }  # fmt: skip


def test_validate_finds_the_range_violation_and_the_bad_twin_status(spark, own_lake, tmp_path):
    lake_settings = own_lake
    schema = StructType(
        [
            StructField(c.name, _parse_datatype_string(c.type), c.nullable)
            for c in SILVER_TELEMETRY_COLUMNS
        ]
    )
    silver = [
        _silver_row("s/l1/pump1", "bearing_temperature", "pump", "temperature", 61.5, "degC", 3),
        _silver_row("s/l1/press1", "oil_temperature", "press", "temperature", 45.0, "degC", 2),
        # 600 bar is above pressure_plausible's 400 bar, and breaks no other rule.
        _silver_row("s/l1/press1", "hydraulic_pressure", "press", "pressure", 600.0, "bar", 1),
    ]
    rows = [tuple(r[c.name] for c in SILVER_TELEMETRY_COLUMNS) for r in silver]
    spark.createDataFrame(rows, schema).write.format("delta").save(
        SILVER_TELEMETRY.path(lake_settings.lake)
    )
    twin = [
        ("s/l1/pump1", "bearing_temperature", 61.5, "degC", NOW, "Good", "alive", "fresh"),
        ("s/l1/press1", "oil_temperature", 45.0, "degC", NOW, "Good", "zombie", "?"),
    ]
    spark.createDataFrame(twin, TWIN_STATE_SCHEMA).write.format("delta").save(
        GOLD_TWIN_STATE.path(lake_settings.lake)
    )

    report = validate_lake(spark, lake_settings, docs_dir=tmp_path / "docs", now_ms=NOW_MS)

    silver_result = report.table(SILVER_TELEMETRY.name)
    assert silver_result.status == "failed"
    assert [(o.rule, o.unexpected_count) for o in silver_result.failed] == [
        ("pressure_plausible", 1)
    ]
    assert "600.0" in silver_result.failed[0].detail
    stream_only = {o.rule for o in silver_result.outcomes if o.success is None}
    assert stream_only == {"temperature_rate_of_change", "sensor_stuck"}
    twin_result = report.table(GOLD_TWIN_STATE.name)
    assert [(o.rule, o.unexpected_count) for o in twin_result.failed] == [("status_valid", 1)]
    for ref in (GOLD_TELEMETRY_1M, GOLD_TELEMETRY_5M):
        assert report.table(ref.name).status == "skipped"
        assert report.table(ref.name).reason == SKIPPED_MISSING
    assert not report.success
    index = report.docs_index.read_text(encoding="utf-8")
    assert SILVER_TELEMETRY.name in index and GOLD_TWIN_STATE.name in index
