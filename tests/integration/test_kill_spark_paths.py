"""kill -9 of bronze and of the cold path, five times each at random points while input keeps
arriving: after a restart nothing is lost or landed twice, and the cold path's tables equal an
uninterrupted run's (issue 14; the single mid-batch kills are in test_restart.py)."""

import random
import threading
import time

import pytest

from plantlake.adapters.kafka import produce
from plantlake.core.config import LakeSettings
from plantlake.core.contracts import (
    BRONZE_DEAD_LETTER,
    BRONZE_TELEMETRY,
    GOLD_LATE_DATA,
    GOLD_OPEN_WINDOWS,
    GOLD_TELEMETRY_1M,
    GOLD_TELEMETRY_5M,
    GOLD_WATERMARKS,
    SILVER_QUARANTINE,
    SILVER_RULE_STATE,
    SILVER_TELEMETRY,
)
from plantlake.core.topics import topic
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs import cold_path
from plantlake.pipelines.jobs.reference import load_reference
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import plant_registry_entries
from tests.integration.test_restart import (
    crash,
    demo_readings,
    every_offset,
    finish,
    lineage,
    produce_raw,
    start_job,
)
from tests.spark.test_silver import BRONZE_SCHEMA, bronze_row

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow, pytest.mark.stress]

KILLS = 5
T0 = 1_767_225_600_000
# Columns stamped with when a job ran: two runs never share them.
RUN_TIMES = {"silver_time", "quarantined_at", "arrival_time", "batch_id", "bronze_ingest_time"}


def _kill_repeatedly(layer, settings, log, rng, *, alive_s, extra_env=None) -> None:
    """Start the job, let it run a random while (`alive_s` bounds), SIGKILL it; KILLS times."""
    for _ in range(KILLS):
        job = start_job(layer, settings, log, once=False, extra_env=extra_env)
        time.sleep(rng.uniform(*alive_s))
        assert job.poll() is None, log.read_text()[-3000:]
        crash(job)


def test_bronze_killed_five_times_under_a_producer_lands_every_offset_once(
    isolated_kafka, tmp_path
):
    settings = isolated_kafka
    name = topic("telemetry").name(settings.kafka.topic_prefix)
    done = threading.Event()

    def producer() -> None:
        for i in range(90):
            produce(settings.kafka, name, demo_readings(f"kill{i}", count=400, start_ms=T0 + i))
            if i % 10 == 0:
                produce_raw(settings, name, [b"{broken %d" % i])
            time.sleep(1)
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    log = tmp_path / "bronze.log"
    _kill_repeatedly("bronze", settings, log, random.Random(3), alive_s=(8, 16))
    assert not done.is_set(), "the producer stopped before the last kill: make it longer"
    thread.join()
    finish(start_job("bronze", settings, log, once=True), log, timeout=300)

    expected = every_offset(settings, [name])
    assert len(expected) == 90 * 400 + 9
    landed = [key for ref in (BRONZE_TELEMETRY, BRONZE_DEAD_LETTER)
              for key in lineage(settings, ref.path(settings.lake))]  # fmt: skip
    assert len(landed) == len(set(landed)), "a Kafka record landed twice"
    assert set(landed) == expected, "a Kafka record was lost"


def _bronze_deliveries(count: int) -> list[list[dict]]:
    """`count` deliveries of bronze rows: 6 sensors every 10 s, in event-time order, with
    implausible values (quarantined), a stuck current (quarantined once stuck long enough)
    and resends (dropped as duplicates)."""
    plant = build_plant(7)
    pump = plant.assets[1]
    sensors = (("bearing_temperature", "degF", 140.0), ("flow", "m3/h", 30.0),
               ("motor_current", "A", 20.0))  # fmt: skip
    rng, offset, out = random.Random(17), 0, []
    for d in range(count):
        rows = []
        for step in range(12):
            t = T0 + (d * 12 + step) * 10_000
            for sensor, unit, base in sensors:
                value = 42.0 if sensor == "motor_current" and d >= count // 2 else base * (
                    1 + 0.05 * rng.random())  # fmt: skip
                if rng.random() < 0.03:
                    value = 5000.0
                rows.append(bronze_row(pump.path, sensor, round(value, 3), unit, t_ms=t,
                                       offset=offset))  # fmt: skip
                offset += 1
        rows.append({**rows[0], "kafka_offset": offset, "edge_seq": offset})  # a resend
        offset += 1
        out.append(rows)
    return out


def _append(spark, settings, rows) -> None:
    frame = spark.createDataFrame(rows, BRONZE_SCHEMA)
    frame.write.format("delta").mode("append").save(BRONZE_TELEMETRY.path(settings.lake))


def _cold_tables(spark, settings) -> dict:
    out = {}
    for ref in (SILVER_TELEMETRY, SILVER_QUARANTINE, SILVER_RULE_STATE, GOLD_TELEMETRY_1M,
                GOLD_TELEMETRY_5M, GOLD_LATE_DATA, GOLD_WATERMARKS, GOLD_OPEN_WINDOWS):  # fmt: skip
        frame = spark.read.format("delta").load(ref.path(settings.lake))
        keep = [c for c in frame.columns if c not in RUN_TIMES]
        out[ref.name] = sorted(tuple(r) for r in frame.select(*keep).collect())
    return out


def test_the_cold_path_killed_five_times_while_bronze_grows_equals_an_uninterrupted_run(
    spark, scratch_lake, tmp_path
):
    deliveries = _bronze_deliveries(40)
    reference = scratch_lake.model_copy(update={"lake": LakeSettings(
        root=f"file://{tmp_path}/ref/lake", checkpoint_root=f"file://{tmp_path}/ref/chk")})  # fmt: skip
    settings = scratch_lake.model_copy(update={"pipeline": scratch_lake.pipeline.model_copy(
        update={"cold_trigger": "2 seconds"})})  # fmt: skip
    for lake in (reference, settings):
        load_reference(
            spark, lake, plant_registry_entries(build_plant(7), default_window_features())
        )
    _append(spark, settings, deliveries[0])
    done = threading.Event()

    def bronze_grows() -> None:
        for rows in deliveries[1:]:
            time.sleep(2)
            _append(spark, settings, rows)
        done.set()

    thread = threading.Thread(target=bronze_grows)
    thread.start()
    log = tmp_path / "cold.log"
    env = {"PLANTLAKE_PIPELINE__COLD_TRIGGER": "2 seconds"}
    try:
        _kill_repeatedly("cold", settings, log, random.Random(4), alive_s=(12, 25), extra_env=env)
        assert not done.is_set(), "bronze stopped growing before the last kill: make it longer"
    finally:
        thread.join()
    finish(start_job("cold", settings, log, once=True), log, timeout=300)

    for rows in deliveries:
        _append(spark, reference, rows)
    query = cold_path.run(spark, reference, once=True)
    query.awaitTermination()
    assert query.exception() is None

    got, expected = _cold_tables(spark, settings), _cold_tables(spark, reference)
    assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in expected.items()}
    assert got == expected
    assert expected["silver.quarantine"], "nothing was held back: the input is too easy"
    keys = [(r[0], r[1], r[4]) for r in got["gold.telemetry_1m"]]
    assert len(keys) == len(set(keys)), "a window landed twice"
