"""The cold path (silver and gold aggregates in one query) writes the same tables as the silver and
gold jobs run one after the other, and a retried batch still reaches gold."""

import datetime as dt

import pytest

from plantlake.core.contracts import (
    BRONZE_EDGE_FEATURES,
    BRONZE_TELEMETRY,
    GOLD_LATE_DATA,
    GOLD_TELEMETRY_1M,
    GOLD_TELEMETRY_5M,
    GOLD_WATERMARKS,
    SILVER_DQ_METRICS,
    SILVER_QUARANTINE,
    SILVER_TELEMETRY,
)
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs import cold_path, gold, silver
from plantlake.pipelines.jobs.reference import load_reference
from plantlake.simulator.registry import plant_registry_entries
from tests.lake_contract import assert_tables_match_contract
from tests.spark.test_quarantine_reviews import decide, decision
from tests.spark.test_silver import BRONZE_SCHEMA, PLANT, T0, bronze_row

pytestmark = [pytest.mark.spark, pytest.mark.slow]

MIN = 60_000
# Columns stamped with the time a job ran, which two runs never share.
RUN_TIMES = {"silver_time", "quarantined_at", "batch_time", "arrival_time", "batch_id"}
TABLES = (SILVER_TELEMETRY, SILVER_QUARANTINE, GOLD_TELEMETRY_1M, GOLD_TELEMETRY_5M,
          GOLD_LATE_DATA, GOLD_WATERMARKS)  # fmt: skip


def _bronze(spark, settings, rows):
    frame = spark.createDataFrame(rows, BRONZE_SCHEMA)
    frame.write.format("delta").mode("append").save(BRONZE_TELEMETRY.path(settings.lake))


def _edge_features(spark, settings, t_ms: int, offset: int):
    """Two window features of pump-02's accelerometer, as bronze lands the edge_features topic."""
    pump = PLANT.assets[1]
    topic = {"kafka_topic": "plantlake.edge_features", "source_protocol": "daq"}
    rows = [
        bronze_row(pump.path, "vibration.crest", 3.1, None, t_ms=t_ms, offset=offset) | topic,
        bronze_row(pump.path, "vibration.band_50_200", 0.7, None, t_ms=t_ms, offset=offset + 1)
        | topic,
    ]
    spark.createDataFrame(rows, BRONZE_SCHEMA).write.format("delta").mode("append").save(
        BRONZE_EDGE_FEATURES.path(settings.lake)
    )


def _deliveries():
    pump = PLANT.assets[1]  # pump-02: degF, psi, m3/h, A, mm/s
    first = [bronze_row(pump.path, "flow", 30.0 + i % 7, "m3/h", t_ms=T0 + i * 10_000, offset=i)
             for i in range(40)]  # fmt: skip
    first.append(bronze_row(pump.path, "bearing_temperature", 1500.0, "degF", t_ms=T0, offset=40))
    first.append(bronze_row(pump.path, "flow", 31.0, "m3/h", t_ms=T0, offset=41))  # a resend
    second = [bronze_row(pump.path, "flow", 40.0 + i % 5, "m3/h", t_ms=T0 + 400_000 + i * 10_000,
                         offset=100 + i) for i in range(30)]  # fmt: skip
    second.append(bronze_row(pump.path, "flow", 35.0, "m3/h", t_ms=T0 - 60 * MIN, offset=200))
    return first, second


def _tables(spark, settings):
    out = {}
    for ref in TABLES:
        frame = spark.read.format("delta").load(ref.path(settings.lake))
        keep = [c for c in frame.columns if c not in RUN_TIMES]
        out[ref.name] = sorted(tuple(r) for r in frame.select(*keep).collect())
    return out


def _run(query):
    query.awaitTermination()
    assert query.exception() is None


def test_the_cold_path_equals_silver_then_gold(spark, tmp_path, lake_settings):
    from plantlake.core.config import LakeSettings

    def lake(name):
        root = f"file://{tmp_path}/{name}"
        return lake_settings.model_copy(update={"lake": LakeSettings(
            root=f"{root}/lake", checkpoint_root=f"{root}/chk")})  # fmt: skip

    layered, cold = lake("layered"), lake("cold")
    first, second = _deliveries()
    for settings in (layered, cold):
        load_reference(spark, settings, plant_registry_entries(PLANT, default_window_features()))
    # A planner releases the 1500 degF reading after the first run: both paths take it to gold.
    release = decision("d-1", first[40], "release", at=dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC))
    for n, delivery in enumerate((first, second)):
        if n == 1:
            for settings in (layered, cold):
                decide(settings, release)
        _bronze(spark, layered, delivery)
        _edge_features(spark, layered, T0 + n * 400_000, offset=2 * n)
        _run(silver.run(spark, layered, once=True))
        _run(gold.run(spark, layered, once=True))
        _bronze(spark, cold, delivery)
        _edge_features(spark, cold, T0 + n * 400_000, offset=2 * n)
        _run(cold_path.run(spark, cold, once=True))
    got, expected = _tables(spark, cold), _tables(spark, layered)
    assert got == expected
    # The resend once, the 1500 degF held back and released, and the four window features.
    assert len(got["silver.telemetry"]) == 70 + 1 + 4 + 1
    assert len(got["silver.quarantine"]) == 1
    windows = spark.read.format("delta").load(GOLD_TELEMETRY_1M.path(cold.lake))
    assert windows.where("sensor = 'bearing_temperature'").count() == 1  # the released reading
    assert got["gold.late_data"]  # the hour-old reading, behind both window sizes
    metrics = spark.read.format("delta").load(SILVER_DQ_METRICS.path(cold.lake))
    assert metrics.where("rule = 'duplicates' AND failed = 1").count() == 1
    # The twin is kept from the telemetry topic: only pump-02's flow is reconciled, per batch.
    reconciled = metrics.where("rule = 'twin_reconciliation'").select("checked").collect()
    assert [r.checked for r in reconciled] == [1, 1]
    written = (
        "reference.asset_registry",
        "reference.units",
        "silver.telemetry",
        "silver.quarantine",
        "silver.dq_metrics",
        "silver.rule_state",
        "gold.watermarks",
        "gold.open_windows",
        "gold.telemetry_1m",
        "gold.telemetry_5m",
        "gold.late_data",
    )
    for settings in (layered, cold):  # the layered jobs and the cold path write the same tables
        assert_tables_match_contract(spark, settings.lake, written)


def test_a_retried_batch_whose_silver_write_committed_still_reaches_gold(spark, own_lake, tmp_path):
    load_reference(spark, own_lake, plant_registry_entries(PLANT, default_window_features()))
    first, _ = _deliveries()
    _bronze(spark, own_lake, first)
    batch = spark.createDataFrame(first, BRONZE_SCHEMA).persist()
    route = silver.batch_writer(
        spark, own_lake.lake, checkpoint=f"file://{tmp_path}/chk", rules=None
    )
    route.write(batch, 0)  # silver committed; then the process died before gold
    route.write(batch, 0)  # the retry: silver skips its append and drops the keys it has seen
    kept = cold_path.silver_rows_of(batch, SILVER_TELEMETRY.path(own_lake.lake))
    assert kept.count() == 40  # every kept row of the batch (not the resend), from the table
    batch.unpersist()
