"""Silver: registry as-of join, unit normalization, dedup, and the streaming job end to end."""

import datetime as dt

import pytest

from plantlake.core.contracts import (
    BRONZE_TELEMETRY,
    SILVER_DQ_METRICS,
    SILVER_QUARANTINE,
    SILVER_TELEMETRY,
)
from plantlake.core.registry_entries import entry_rows
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs import silver
from plantlake.pipelines.jobs.reference import load_reference
from plantlake.pipelines.transforms.asset_registry import REGISTRY_SCHEMA, join_registry
from plantlake.pipelines.transforms.dedup import dedup_batch, drop_seen
from plantlake.pipelines.transforms.expectations import load_rules
from plantlake.pipelines.transforms.unit_conversion import UNITS_SCHEMA, normalize_units, unit_rows
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import REMOUNTS, plant_registry_entries

pytestmark = pytest.mark.spark

PLANT = build_plant(7)
REMOUNT = REMOUNTS[0]
REMOUNT_MS = PLANT.start_ms + int(REMOUNT.after.total_seconds() * 1000)
T0 = REMOUNT_MS + 3 * 24 * 3_600_000  # a time after the remount, well in the past

BRONZE_SCHEMA = (
    "schema_version int, asset string, sensor string, value double, unit string, quality string, "
    "event_time_ms long, receive_time_ms long, source_protocol string, source_node string, "
    "sequence long, filter_version string, event_time timestamp, receive_time timestamp, "
    "kafka_key string, kafka_topic string, kafka_partition int, kafka_offset long, "
    "kafka_timestamp timestamp, edge_instance string, edge_seq long, raw_value binary, "
    "ingest_time timestamp"
)


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def bronze_row(asset, sensor, value, unit, *, t_ms, offset, sequence=None, quality="Good"):
    """A bronze.telemetry row; `offset` is the Kafka offset (and the edge seq)."""
    return {
        "schema_version": 1, "asset": asset, "sensor": sensor, "value": value, "unit": unit,
        "quality": quality, "event_time_ms": t_ms, "receive_time_ms": t_ms + 40,
        "source_protocol": "opcua", "source_node": "test", "sequence": sequence,
        "filter_version": "test", "event_time": _ts(t_ms), "receive_time": _ts(t_ms + 40),
        "kafka_key": asset, "kafka_topic": "plantlake.telemetry", "kafka_partition": 0,
        "kafka_offset": offset, "kafka_timestamp": _ts(t_ms + 50), "edge_instance": "edge-a",
        "edge_seq": offset, "raw_value": b"{}", "ingest_time": _ts(t_ms + 60),
    }  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _small_delta_snapshots(spark):
    # Delta replays a table's log with 50 tasks by default; on tiny test tables that is most of
    # the time a batch takes.
    spark.conf.set("spark.databricks.delta.snapshotPartitions", "2")


@pytest.fixture(scope="module")
def reference(spark):
    return (
        spark.createDataFrame(
            entry_rows(plant_registry_entries(PLANT, default_window_features())), REGISTRY_SCHEMA
        ),
        spark.createDataFrame(unit_rows(), UNITS_SCHEMA),
    )


def test_registry_join_picks_the_row_valid_at_event_time_once_at_the_boundary(spark, reference):
    registry, _ = reference
    rows = [
        bronze_row(REMOUNT.asset, "vibration.rms", 1.0, "mm/s", t_ms=REMOUNT_MS - 1, offset=0),
        bronze_row(REMOUNT.asset, "vibration.rms", 1.0, "mm/s", t_ms=REMOUNT_MS, offset=1),
        bronze_row(REMOUNT.asset, "vibration.rms", 1.0, "mm/s", t_ms=T0, offset=2),
        bronze_row("plant1/line9/ghost-99", "flow", 1.0, "m3/h", t_ms=T0, offset=3),
    ]
    joined = join_registry(spark.createDataFrame(rows, BRONZE_SCHEMA), registry=registry)
    got = [(r.kafka_offset, r.asset_class, r.registry_quantity) for r in joined.collect()]
    assert sorted(got) == [
        (0, "motor", "vibration"),
        (1, "pump", "vibration"),
        (2, "pump", "vibration"),
        (3, None, None),
    ]


def test_normalize_units_converts_and_refuses_unknown_or_contradicting_units(spark, reference):
    registry, units = reference
    pump, motor = "plant1/line1/pump-02", "plant1/line1/motor-03"
    rows = [
        bronze_row(pump, "bearing_temperature", 212.0, "degF", t_ms=T0, offset=0),
        bronze_row(motor, "bearing_temperature", 373.15, "K", t_ms=T0, offset=1),
        bronze_row(pump, "discharge_pressure", 14.5038, "psi", t_ms=T0, offset=2),
        bronze_row(motor, "motor_current", 42.0, "furlong", t_ms=T0, offset=3),
        bronze_row(pump, "bearing_temperature", 87.0, "psi", t_ms=T0, offset=4),
        bronze_row(pump, "vibration.crest", 3.2, None, t_ms=T0, offset=5),
        bronze_row("plant1/line1/press-01", "running", 1.0, "", t_ms=T0, offset=6),
        # UNECE Rec. 20 codes, as a Modbus map or a Sparkplug engUnit may declare them, and an
        # unmapped code as the OPC-UA edge reports it (no pint unit: `UNECE:<code>`).
        bronze_row(pump, "bearing_temperature", 212.0, "FAH", t_ms=T0, offset=7),
        bronze_row(pump, "discharge_pressure", 14.5038, "PS", t_ms=T0, offset=8),
        bronze_row(motor, "motor_current", 5.0, "UNECE:M50", t_ms=T0, offset=9),
    ]
    readings = join_registry(spark.createDataFrame(rows, BRONZE_SCHEMA), registry=registry)
    got = {r.kafka_offset: r for r in normalize_units(readings, units=units).collect()}

    def seen(offset):
        r = got[offset]
        return r.value, r.unit, r.quantity, r.unit_error

    assert seen(0) == (pytest.approx(100.0), "degC", "temperature", None)
    assert (got[0].source_value, got[0].source_unit) == (212.0, "degF")
    assert seen(1) == (pytest.approx(100.0), "degC", "temperature", None)
    assert seen(2)[:2] == (pytest.approx(1.0, rel=1e-5), "bar")
    assert seen(3)[:3] == (None, None, "current")
    assert "'furlong'" in got[3].unit_error and "reference.units" in got[3].unit_error
    assert seen(4)[:3] == (None, None, "temperature")
    assert "measures pressure" in got[4].unit_error and "measures temperature" in got[4].unit_error
    assert seen(5) == (3.2, None, "ratio", None)  # a unitless window feature passes through
    assert seen(6) == (1.0, "", "state", None)
    assert seen(7) == (pytest.approx(100.0), "degC", "temperature", None)
    assert (got[7].source_value, got[7].source_unit) == (212.0, "FAH")
    assert seen(8)[:2] == (pytest.approx(1.0, rel=1e-5), "bar")
    assert seen(9)[:2] == (None, None) and "UNECE:M50" in got[9].unit_error


def test_dedup_keeps_earliest_offset_in_batch_and_drops_keys_already_in_silver(spark):
    a = "plant1/line1/pump-02"
    rows = [
        bronze_row(a, "flow", 1.0, "m3/h", t_ms=T0, offset=5),  # resent copy of offset 3
        bronze_row(a, "flow", 1.0, "m3/h", t_ms=T0, offset=3),
        bronze_row(a, "vibration", 0.1, "mm/s", t_ms=T0, offset=7, sequence=1),
        bronze_row(a, "vibration", 0.2, "mm/s", t_ms=T0, offset=8, sequence=2),
        bronze_row(a, "flow", 1.0, "m3/h", t_ms=T0 + 1000, offset=9),  # silver has it
        bronze_row(a, "speed", 1.0, "rpm", t_ms=T0, offset=10, sequence=1),  # silver: seq null
    ]
    seen = spark.createDataFrame(
        [(a, "flow", T0 + 1000, None), (a, "speed", T0, None)],
        "asset string, sensor string, event_time_ms long, sequence long",
    )
    batch = spark.createDataFrame(rows, BRONZE_SCHEMA)
    kept = drop_seen(dedup_batch(batch), seen=seen).collect()
    assert sorted(r.kafka_offset for r in kept) == [3, 7, 8, 10]


def _bronze_batch() -> list[dict]:
    pump, motor = "plant1/line1/pump-02", "plant1/line1/motor-03"
    return [
        bronze_row(pump, "bearing_temperature", 131.0, "degF", t_ms=T0, offset=0),
        bronze_row(pump, "bearing_temperature", 131.0, "degF", t_ms=T0, offset=1),  # duplicate
        bronze_row(pump, "discharge_pressure", 87.0228, "psi", t_ms=T0, offset=2),
        bronze_row(motor, "bearing_temperature", 873.15, "K", t_ms=T0 + 1000, offset=3),  # 600 C
        bronze_row(motor, "speed", 1480.0, "rpm", t_ms=T0, offset=4, quality="Uncertain"),
        bronze_row(motor, "motor_current", 42.0, "furlong", t_ms=T0, offset=5),
        bronze_row(pump, "vibration.crest", 3.1, None, t_ms=T0, offset=6),
    ]


def _run_once(spark, settings) -> None:
    query = silver.run(spark, settings, once=True)
    query.awaitTermination()
    assert query.exception() is None


def test_silver_job_end_to_end_routes_converts_measures_and_is_idempotent(spark, lake_settings):
    lake = lake_settings.lake
    spark.createDataFrame(_bronze_batch(), BRONZE_SCHEMA).write.format("delta").mode("append").save(
        BRONZE_TELEMETRY.path(lake)
    )
    load_reference(spark, lake_settings, plant_registry_entries(PLANT, default_window_features()))
    _run_once(spark, lake_settings)

    table = spark.read.format("delta").load(SILVER_TELEMETRY.path(lake))
    assert [(f.name, f.dataType) for f in table.schema] == [
        (f.name, f.dataType) for f in silver.silver_schema()
    ]
    rows = table.collect()
    assert len(rows) == 4  # the duplicate is gone, the 600 degC and furlong readings are held
    kept = {(r.asset.split("/")[-1], r.sensor): r for r in rows}
    temp = kept[("pump-02", "bearing_temperature")]
    assert (temp.value, temp.unit) == (pytest.approx(55.0), "degC")
    assert (temp.source_value, temp.source_unit) == (131.0, "degF")
    assert (temp.asset_class, temp.kafka_offset, temp.dq_warnings) == ("pump", 0, [])
    assert kept[("pump-02", "discharge_pressure")].value == pytest.approx(6.0, rel=1e-5)
    assert kept[("motor-03", "speed")].dq_warnings == ["quality_good"]
    assert kept[("pump-02", "vibration.crest")].quantity == "ratio"

    held = {
        r.sensor: r for r in spark.read.format("delta").load(SILVER_QUARANTINE.path(lake)).collect()
    }
    assert set(held) == {"bearing_temperature", "motor_current"}
    hot = held["bearing_temperature"]
    failed = {f.rule: f for f in hot.failed_rules}
    assert {"temperature_plausible", "bearing_temperature_rotating"} <= set(failed)
    assert all(f.action == "quarantine" for f in failed.values())
    reason = failed["temperature_plausible"].reason
    assert "600" in reason and "above the plausible maximum 250 degC" in reason
    assert (hot.value, hot.unit) == (873.15, "K")  # as the device sent it
    assert (hot.kafka_offset, hot.edge_instance, hot.edge_seq) == (3, "edge-a", 3)
    assert (hot.review_status, hot.reviewer, hot.decided_at) == ("open", None, None)
    [unit_failure] = held["motor_current"].failed_rules
    assert (unit_failure.rule, unit_failure.action) == ("unit", "quarantine")
    assert "furlong" in unit_failure.reason

    metrics = spark.read.format("delta").load(SILVER_DQ_METRICS.path(lake)).collect()
    assert {m.batch_id for m in metrics} == {0}
    by_rule = {m.rule: m for m in metrics}
    assert set(by_rule) == {r.name for r in load_rules()} | {"duplicates", "unit"}
    assert (by_rule["duplicates"].checked, by_rule["duplicates"].failed) == (7, 1)
    assert (by_rule["unit"].checked, by_rule["unit"].failed) == (6, 1)
    assert by_rule["temperature_plausible"].failed == 1
    assert by_rule["quality_good"].action == "warn"

    # A replay (the same readings again under new Kafka offsets, as after an edge crash or a
    # checkpoint reset) adds nothing: the job skips keys silver or the quarantine already hold.
    replay = [row | {"kafka_offset": row["kafka_offset"] + 100} for row in _bronze_batch()]
    spark.createDataFrame(replay, BRONZE_SCHEMA).write.format("delta").mode("append").save(
        BRONZE_TELEMETRY.path(lake)
    )
    _run_once(spark, lake_settings)
    assert spark.read.format("delta").load(SILVER_TELEMETRY.path(lake)).count() == 4
    assert spark.read.format("delta").load(SILVER_QUARANTINE.path(lake)).count() == 2
    replayed = (
        spark.read.format("delta")
        .load(SILVER_DQ_METRICS.path(lake))
        .where("rule = 'duplicates' and batch_id > 0")
        .collect()
    )
    assert [(m.checked, m.failed) for m in replayed] == [(7, 7)]


def test_edge_features_reach_silver_and_an_older_checkpoint_resumes_where_it_was(spark, own_lake):
    from plantlake.adapters.checkpoints import start_exclusive
    from plantlake.core.contracts import BRONZE_EDGE_FEATURES

    lake = own_lake.lake
    pump = "plant1/line1/pump-02"
    telemetry = [bronze_row(pump, "bearing_temperature", 131.0, "degF", t_ms=T0, offset=0)]
    spark.createDataFrame(telemetry, BRONZE_SCHEMA).write.format("delta").mode("append").save(
        BRONZE_TELEMETRY.path(lake)
    )
    load_reference(spark, own_lake, plant_registry_entries(PLANT, default_window_features()))
    # The silver query as it was before edge features reached the lake: bronze.telemetry alone.
    checkpoint = lake.checkpoint_path("silver")
    writer = silver.batch_writer(spark, lake, checkpoint=checkpoint, rules=None)
    old = spark.readStream.format("delta").load(BRONZE_TELEMETRY.path(lake))
    query = start_exclusive(old, writer, own_lake, checkpoint, job="silver", every=None)
    query.awaitTermination()
    assert query.exception() is None

    feature = {"kafka_topic": "plantlake.edge_features", "source_protocol": "daq"}
    features = [
        bronze_row(pump, "vibration.band_50_200", 0.8, None, t_ms=T0, offset=0) | feature,
        bronze_row(pump, "vibration.crest", 3.2, None, t_ms=T0, offset=1) | feature,
        bronze_row(pump, "vibration.rms", 2.5, "mm/s", t_ms=T0, offset=2) | feature,
    ]
    spark.createDataFrame(features, BRONZE_SCHEMA).write.format("delta").mode("append").save(
        BRONZE_EDGE_FEATURES.path(lake)
    )
    later = bronze_row(pump, "bearing_temperature", 132.0, "degF", t_ms=T0 + 1000, offset=1)
    spark.createDataFrame([later], BRONZE_SCHEMA).write.format("delta").mode("append").save(
        BRONZE_TELEMETRY.path(lake)
    )
    _run_once(spark, own_lake)  # the two-source query, on the one-source checkpoint

    rows = spark.read.format("delta").load(SILVER_TELEMETRY.path(lake)).collect()
    by_sensor: dict[str, list] = {}
    for r in rows:
        by_sensor.setdefault(r.sensor, []).append(r)
    # Each telemetry reading once: the old checkpoint's place in bronze.telemetry was kept.
    assert sorted(r.source_value for r in by_sensor["bearing_temperature"]) == [131.0, 132.0]
    [band] = by_sensor["vibration.band_50_200"]
    assert (band.quantity, band.value, band.unit, band.kafka_topic) == (
        "energy",
        0.8,
        None,
        "plantlake.edge_features",
    )
    assert by_sensor["vibration.crest"][0].quantity == "ratio"
    assert by_sensor["vibration.rms"][0].value == pytest.approx(2.5)
    assert spark.read.format("delta").load(SILVER_QUARANTINE.path(lake)).count() == 0
