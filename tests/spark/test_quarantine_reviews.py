"""Planners' quarantine decisions (silver.quarantine_reviews) applied by the silver job: review
columns, releases into silver.telemetry exactly once, older lakes, and gold's view of a release."""

import datetime as dt
import logging
from urllib.parse import urlparse

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from pyspark.sql import functions as F

from plantlake.core.contracts import (
    BRONZE_TELEMETRY,
    GOLD_LATE_DATA,
    GOLD_TELEMETRY_1M,
    SILVER_QUARANTINE,
    SILVER_QUARANTINE_REVIEWS,
    SILVER_TELEMETRY,
    SILVER_TELEMETRY_COLUMNS,
)
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs import gold, silver
from plantlake.pipelines.jobs.reference import load_reference
from plantlake.pipelines.transforms.reviews import RELEASE_FAILED
from plantlake.simulator.registry import plant_registry_entries
from tests.lake_contract import assert_tables_match_contract
from tests.spark.test_silver import BRONZE_SCHEMA, PLANT, T0, bronze_row

pytestmark = [pytest.mark.spark, pytest.mark.slow]

PUMP, MOTOR = "plant1/line1/pump-02", "plant1/line1/motor-03"
TOPIC = "plantlake.telemetry"
REVIEWS_SCHEMA = pa.schema(
    [
        ("decision_id", pa.string()), ("kafka_topic", pa.string()),
        ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64()), ("asset", pa.string()),
        ("sensor", pa.string()), ("event_time_ms", pa.int64()), ("decision", pa.string()),
        ("note", pa.string()), ("reviewer", pa.string()),
        ("decided_at", pa.timestamp("us", tz="UTC")), ("supersedes", pa.string()),
    ]
)  # fmt: skip


def _at(minute: int) -> dt.datetime:
    return dt.datetime(2026, 3, 2, 9, minute, tzinfo=dt.UTC)


def decide(settings, *decisions: dict) -> None:
    """Append decisions to silver.quarantine_reviews through delta-rs, as the workbench does."""
    path = urlparse(SILVER_QUARANTINE_REVIEWS.path(settings.lake)).path
    write_deltalake(path, pa.Table.from_pylist(list(decisions), REVIEWS_SCHEMA), mode="append")


def decision(decision_id, reading: dict, kind: str, *, at: dt.datetime, note=None) -> dict:
    """A decision on the quarantined reading that came from the bronze row `reading`."""
    return {
        "decision_id": decision_id, "kafka_topic": reading["kafka_topic"],
        "kafka_partition": reading["kafka_partition"], "kafka_offset": reading["kafka_offset"],
        "asset": reading["asset"], "sensor": reading["sensor"],
        "event_time_ms": reading["event_time_ms"], "decision": kind, "note": note,
        "reviewer": "ana", "decided_at": at, "supersedes": None,
    }  # fmt: skip


def _bronze(spark, settings, rows) -> None:
    spark.createDataFrame(rows, BRONZE_SCHEMA).write.format("delta").mode("append").save(
        BRONZE_TELEMETRY.path(settings.lake)
    )


def _run(query) -> None:
    query.awaitTermination()
    assert query.exception() is None


def _table(spark, settings, ref):
    return spark.read.format("delta").load(ref.path(settings.lake))


def _reviews(spark, settings) -> dict[int, tuple]:
    """silver.quarantine's review columns by Kafka offset."""
    rows = _table(spark, settings, SILVER_QUARANTINE).collect()
    return {
        r.kafka_offset: (r.review_status, r.review_decision_id, r.reviewer, r.review_note)
        for r in rows
    }


def _released(spark, settings) -> dict[int, list]:
    """silver.telemetry's rows by Kafka offset (a list: a reading there twice is a bug)."""
    found: dict[int, list] = {}
    for r in _table(spark, settings, SILVER_TELEMETRY).collect():
        found.setdefault(r.kafka_offset, []).append(r)
    return found


def _old_lake(spark, settings) -> None:
    """silver.telemetry and silver.quarantine as a lake from before the review columns had them."""
    telemetry = SILVER_TELEMETRY.path(settings.lake)
    old = [c for c in SILVER_TELEMETRY_COLUMNS if c.name != "released_by"]
    columns = ", ".join(f"`{c.name}` {c.type}{'' if c.nullable else ' NOT NULL'}" for c in old)
    spark.sql(f"CREATE TABLE delta.`{telemetry}` ({columns}) USING delta")
    quarantine = ", ".join(SILVER_QUARANTINE.columns[:-1])
    spark.createDataFrame([], quarantine).write.format("delta").save(
        SILVER_QUARANTINE.path(settings.lake)
    )


HOT = bronze_row(PUMP, "bearing_temperature", 1500.0, "degF", t_ms=T0, offset=0)
MOTOR_HOT = bronze_row(MOTOR, "bearing_temperature", 873.15, "K", t_ms=T0 + 1000, offset=1)
HIGH = bronze_row(PUMP, "discharge_pressure", 9000.0, "psi", t_ms=T0, offset=2)  # 620 bar
FURLONG = bronze_row(MOTOR, "motor_current", 42.0, "furlong", t_ms=T0, offset=3)
FLOW = bronze_row(PUMP, "flow", 31.0, "m3/h", t_ms=T0, offset=4)


def test_decisions_update_reviews_and_release_readings_once_on_an_older_lake(
    spark, own_lake, tmp_path, caplog
):
    load_reference(spark, own_lake, plant_registry_entries(PLANT, default_window_features()))
    _bronze(spark, own_lake, [HOT, MOTOR_HOT, HIGH, FURLONG, FLOW])
    _old_lake(spark, own_lake)
    checkpoint = own_lake.lake.checkpoint_path("silver")
    silver.batch_writer(spark, own_lake.lake, checkpoint=checkpoint, rules=None)
    # The columns are there before any write (a write would merge them in itself).
    assert_tables_match_contract(spark, own_lake.lake, ("silver.telemetry", "silver.quarantine"))
    _run(silver.run(spark, own_lake, once=True))
    assert set(_reviews(spark, own_lake).values()) == {("open", None, None, None)}

    decide(
        own_lake,
        decision("d-hot", HOT, "release", at=_at(1)),
        decision("d-motor", MOTOR_HOT, "confirm_fault", at=_at(1)),
        decision("d-high", HIGH, "release", at=_at(1)),
        decision("d-high-note", HIGH, "note", at=_at(2), note="valve test: the pressure was real"),
        decision("d-furlong", FURLONG, "release", at=_at(1)),
    )
    _run(silver.run(spark, own_lake, once=True))  # no new bronze rows: applied at start

    assert _reviews(spark, own_lake) == {
        0: ("released", "d-hot", "ana", None),
        1: ("confirmed_fault", "d-motor", "ana", None),
        # A note after a release keeps the release; the review shows the latest decision.
        2: ("noted", "d-high-note", "ana", "valve test: the pressure was real"),
        3: (RELEASE_FAILED, "d-furlong", "ana", None),  # furlong converts to nothing
    }
    rows = _released(spark, own_lake)
    assert sorted(rows) == [0, 2, 4]
    [hot], [high], [flow] = rows[0], rows[2], rows[4]
    assert (hot.value, hot.unit, hot.quantity) == (pytest.approx(815.5556), "degC", "temperature")
    assert (hot.source_value, hot.source_unit, hot.asset_class) == (1500.0, "degF", "pump")
    assert (hot.released_by, hot.kafka_topic, hot.kafka_partition) == ("d-hot", TOPIC, 0)
    assert {"temperature_plausible", "bearing_temperature_rotating"} <= set(hot.dq_warnings)
    assert hot.silver_time is not None and hot.bronze_ingest_time is not None
    assert (high.value, high.released_by) == (pytest.approx(620.528, rel=1e-4), "d-high")
    assert high.dq_warnings == ["pressure_plausible"]
    assert flow.released_by is None  # it passed the rules
    # A confirmed fault counts against its sensor.
    faults = (
        _table(spark, own_lake, SILVER_QUARANTINE)
        .where(F.col("review_status") == "confirmed_fault")
        .groupBy("asset", "sensor")
        .count()
        .collect()
    )
    assert [(r.asset, r.sensor, r["count"]) for r in faults] == [(MOTOR, "bearing_temperature", 1)]

    _run(silver.run(spark, own_lake, once=True))  # a rerun adds nothing
    assert {k: len(v) for k, v in _released(spark, own_lake).items()} == {0: 1, 2: 1, 4: 1}

    # Later decisions, applied by a micro-batch: a fault confirmed after the release, a release
    # again, and an older decision reaching the lake late.
    decide(
        own_lake,
        decision("d-hot-fault", HOT, "confirm_fault", at=_at(3), note="bad probe after all"),
        decision("d-high-again", HIGH, "release", at=_at(3)),
        decision("d-motor-late", MOTOR_HOT, "release", at=_at(0)),
    )
    later = bronze_row(PUMP, "flow", 32.0, "m3/h", t_ms=T0 + 2000, offset=5)
    writer = silver.batch_writer(spark, own_lake.lake, checkpoint=f"file://{tmp_path}/direct",
                                 rules=None)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="plantlake.pipelines.jobs.review_apply"):
        writer(spark.createDataFrame([later], BRONZE_SCHEMA), 0)
    assert "silver batch 0: applied 2 quarantine decisions" in caplog.text
    assert "0 readings released" in caplog.text

    reviews = _reviews(spark, own_lake)
    assert reviews[0] == ("confirmed_fault", "d-hot-fault", "ana", "bad probe after all")
    assert reviews[1] == ("confirmed_fault", "d-motor", "ana", None)  # the late one lost
    assert reviews[2] == ("released", "d-high-again", "ana", None)
    rows = _released(spark, own_lake)
    # Released, then confirmed as a fault: it stays in silver.telemetry, once, as released.
    assert {k: [r.released_by for r in v] for k, v in rows.items()} == {
        0: ["d-hot"],
        2: ["d-high"],
        4: [None],
        5: [None],
    }


def test_an_application_cut_short_hands_gold_the_same_rows_again(spark, own_lake, tmp_path):
    load_reference(spark, own_lake, plant_registry_entries(PLANT, default_window_features()))
    _bronze(spark, own_lake, [HOT, HIGH])
    _run(silver.run(spark, own_lake, once=True))
    checkpoint = f"file://{tmp_path}/cold"
    decide(own_lake, decision("d-hot", HOT, "release", at=_at(1)))

    def crash(released):
        raise RuntimeError("the process died after the append")

    writer = silver.batch_writer(spark, own_lake.lake, checkpoint=checkpoint, rules=None)
    with pytest.raises(RuntimeError):
        writer.reviews.apply(label="attempt 1", on_released=crash)
    assert _reviews(spark, own_lake)[0][0] == "open"  # still pending
    decide(own_lake, decision("d-high", HIGH, "release", at=_at(2)))

    handed = []

    def record(released):
        rows = released.rows.collect()
        handed.append(
            (released.txn_app, released.txn_version, sorted(r.kafka_offset for r in rows))
        )

    restarted = silver.batch_writer(spark, own_lake.lake, checkpoint=checkpoint, rules=None)
    applied = restarted.reviews.apply(label="attempt 2", on_released=record)
    # First the cut-short application again (reviews version 0: the same rows, which gold
    # skips where it wrote them), then the newer decisions.
    assert [(version, offsets) for _, version, offsets in handed] == [(0, [0]), (1, [2])]
    assert handed[0][0] == handed[1][0] and handed[0][0].startswith("reviews:")
    assert (applied.decisions, applied.released) == (2, 1)  # the first release was in already
    assert {k: len(v) for k, v in _released(spark, own_lake).items()} == {0: 1, 2: 1}
    assert [s for s, *_ in _reviews(spark, own_lake).values()] == ["released", "released"]
    assert restarted.reviews.apply(label="again", on_released=record).decisions == 0
    assert len(handed) == 2


def test_gold_aggregates_a_release_in_an_open_window_and_a_closed_one_is_late_data(spark, own_lake):
    load_reference(spark, own_lake, plant_registry_entries(PLANT, default_window_features()))
    flows = [bronze_row(PUMP, "flow", 30.0 + i % 7, "m3/h", t_ms=T0 + i * 10_000, offset=i)
             for i in range(61)]  # fmt: skip
    open_one = bronze_row(PUMP, "flow", 5000.0, "m3/h", t_ms=T0 + 305_000, offset=100)
    closed_one = bronze_row(PUMP, "flow", 5000.0, "m3/h", t_ms=T0 - 3_600_000, offset=101)
    _bronze(spark, own_lake, [*flows, open_one, closed_one])
    _run(silver.run(spark, own_lake, once=True))
    _run(gold.run(spark, own_lake, once=True))
    window_start = open_one["event_time_ms"] - open_one["event_time_ms"] % 60_000

    def window():
        return (
            _table(spark, own_lake, GOLD_TELEMETRY_1M)
            .where((F.col("sensor") == "flow") & (F.col("window_start_ms") == window_start))
            .select("count", "max")
            .first()
        )

    before = window()
    assert before["max"] < 100  # both 5000 m3/h readings are held back
    decide(
        own_lake,
        decision("d-open", open_one, "release", at=_at(1)),
        decision("d-closed", closed_one, "release", at=_at(1)),
    )
    for _ in range(2):  # the second round is a rerun: it changes nothing
        _run(silver.run(spark, own_lake, once=True))
        _run(gold.run(spark, own_lake, once=True))
        after = window()
        # The sensor's watermark (its newest reading, T0 + 10 min, less 15 min) has not closed
        # the window of the first: gold aggregates it.
        assert (after["count"], after["max"]) == (before["count"] + 1, 5000.0)
        late = _table(spark, own_lake, GOLD_LATE_DATA).collect()
        # The second's window closed long ago: it lands in gold.late_data, per window table.
        assert sorted((r.gold_table, r.kafka_offset) for r in late) == [
            ("gold.telemetry_1m", 101),
            ("gold.telemetry_5m", 101),
        ]
