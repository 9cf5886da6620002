"""land_batch: one parsing pass lands a batch of good telemetry; other records take a second
pass; a retried batch adds nothing; empty parts commit nothing once their tables exist."""

import orjson
import pytest

from plantlake.app.demo import demo_readings
from plantlake.core.contracts import (
    BRONZE_DEAD_LETTER,
    BRONZE_EDGE_FEATURES,
    BRONZE_LIFECYCLE,
    BRONZE_TELEMETRY,
)
from plantlake.core.records import DeadLetter, LifecycleEvent, LifecycleKind
from plantlake.core.topics import topic
from plantlake.pipelines.jobs import bronze
from tests.lake_contract import assert_tables_match_contract

pytestmark = pytest.mark.spark

_KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
    "headers array<struct<key:string, value:binary>>"
)


def _batch(spark, settings, records: list[tuple[str, bytes]], *, first_offset: int = 0):
    """A micro-batch shaped like the Kafka source's: (topic key, payload) per record."""
    rows = [
        (
            b"k",
            payload,
            topic(key).name(settings.kafka.topic_prefix),
            0,
            first_offset + i,
            None,
            None,
        )
        for i, (key, payload) in enumerate(records)
    ]
    return spark.createDataFrame(rows, _KAFKA_SCHEMA)


def _readings(count: int, start_ms: int) -> list[tuple[str, bytes]]:
    return [
        ("telemetry", orjson.dumps(r)) for r in demo_readings("l", count=count, start_ms=start_ms)
    ]


def _features(count: int, start_ms: int) -> list[tuple[str, bytes]]:
    """Window features as the edge sends them: canonical records on the edge_features topic."""
    return [
        ("edge_features", orjson.dumps(r | {"sensor": "vibration.crest", "unit": None}))
        for r in demo_readings("f", count=count, start_ms=start_ms)
    ]


def _tables(spark, settings) -> dict[str, tuple[int, int]]:
    """Rows and Delta version of each bronze table."""
    out = {}
    for ref in (BRONZE_TELEMETRY, BRONZE_EDGE_FEATURES, BRONZE_LIFECYCLE, BRONZE_DEAD_LETTER):
        path = ref.path(settings.lake)
        version = spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").first().version
        out[ref.table] = (spark.read.format("delta").load(path).count(), version)
    return out


def test_every_part_lands_once_and_a_retried_batch_adds_nothing(spark, own_lake):
    death = LifecycleEvent(LifecycleKind.DEATH, "sparkplug", "gw", 1_000, 1_005, bd_seq=3)
    letter = DeadLetter("modbus", "plc", "bad register", b"\x01", 7)
    batch = _batch(spark, own_lake, [
        *_readings(3, 1_767_225_600_000),
        ("telemetry", b"{broken"),
        *_features(2, 1_767_225_600_000),
        ("edge_features", b'{"sensor": 3}'),  # a window feature bronze refuses
        ("lifecycle", orjson.dumps(death.to_record())),
        ("dead_letter", orjson.dumps(letter.to_record())),
    ])  # fmt: skip
    bronze.land_batch(batch, own_lake, app_id="a", batch_id=0, existing=set())
    landed = _tables(spark, own_lake)
    assert {t: rows for t, (rows, _) in landed.items()} == {
        "telemetry": 3, "edge_features": 2, "lifecycle": 1, "dead_letter": 3,
    }  # fmt: skip
    # The retry (as after a crash between commits): Delta skips each append already committed,
    # and no table gains a row or a version.
    bronze.land_batch(batch, own_lake, app_id="a", batch_id=0, existing=set())
    assert _tables(spark, own_lake) == landed

    detail = spark.sql(f"DESCRIBE DETAIL delta.`{BRONZE_TELEMETRY.path(own_lake.lake)}`").first()
    assert detail.properties == BRONZE_TELEMETRY.properties()
    assert_tables_match_contract(spark, own_lake.lake, (
        "bronze.telemetry", "bronze.edge_features", "bronze.lifecycle", "bronze.dead_letter",
    ))  # fmt: skip
    features = spark.read.format("delta").load(BRONZE_EDGE_FEATURES.path(own_lake.lake))
    assert {r.sensor for r in features.collect()} == {"vibration.crest"}


def test_good_telemetry_alone_commits_only_telemetry(spark, own_lake):
    first = _batch(spark, own_lake, _readings(2, 1_767_225_600_000))
    bronze.land_batch(first, own_lake, app_id="a", batch_id=0, existing=set())
    created = _tables(spark, own_lake)  # the first batch creates the empty tables
    assert {t: rows for t, (rows, _) in created.items()} == {
        "telemetry": 2, "edge_features": 0, "lifecycle": 0, "dead_letter": 0,
    }  # fmt: skip

    second = _batch(spark, own_lake, _readings(4, 1_767_225_700_000), first_offset=2)
    bronze.land_batch(second, own_lake, app_id="a", batch_id=1, existing=set())
    after = _tables(spark, own_lake)
    assert after["telemetry"] == (6, created["telemetry"][1] + 1)
    assert after["edge_features"] == created["edge_features"]
    assert after["lifecycle"] == created["lifecycle"]
    assert after["dead_letter"] == created["dead_letter"]


def test_a_lifecycle_event_beside_good_telemetry_lands_in_its_table(spark, own_lake):
    birth = LifecycleEvent(LifecycleKind.BIRTH, "sparkplug", "gw", 2_000, 2_004, bd_seq=4)
    batch = _batch(spark, own_lake, [
        *_readings(2, 1_767_225_600_000), ("lifecycle", orjson.dumps(birth.to_record())),
    ])  # fmt: skip
    bronze.land_batch(batch, own_lake, app_id="a", batch_id=0, existing=set())
    [event] = spark.read.format("delta").load(BRONZE_LIFECYCLE.path(own_lake.lake)).collect()
    assert (event.kind, event.bd_seq, event.kafka_offset) == ("birth", 4, 2)
    assert spark.read.format("delta").load(BRONZE_TELEMETRY.path(own_lake.lake)).count() == 2
    assert spark.read.format("delta").load(BRONZE_DEAD_LETTER.path(own_lake.lake)).count() == 0


def test_a_nanosecond_stamp_is_a_dead_letter_and_the_batch_lands(spark, own_lake):
    # Before the epoch-millisecond check, timestamp_millis overflowed on it and every run of
    # bronze failed on the same batch, stopping bronze for every protocol.
    [reading] = demo_readings("ns", count=1, start_ms=1_767_225_600_000)
    nanos = reading | {"event_time_ms": reading["event_time_ms"] * 1_000_000}
    batch = _batch(
        spark, own_lake, [*_readings(2, 1_767_225_600_000), ("telemetry", orjson.dumps(nanos))]
    )
    bronze.land_batch(batch, own_lake, app_id="a", batch_id=0, existing=set())
    [letter] = spark.read.format("delta").load(BRONZE_DEAD_LETTER.path(own_lake.lake)).collect()
    assert letter.kafka_offset == 2 and letter.reason.startswith("event_time_ms ")
    assert spark.read.format("delta").load(BRONZE_TELEMETRY.path(own_lake.lake)).count() == 2


def test_window_features_alone_land_without_a_pass_over_the_rest(spark, own_lake):
    first = _batch(spark, own_lake, _readings(2, 1_767_225_600_000))
    bronze.land_batch(first, own_lake, app_id="a", batch_id=0, existing=set())
    created = _tables(spark, own_lake)
    features = _batch(spark, own_lake, [*_readings(1, 1_767_225_700_000),
                                        *_features(3, 1_767_225_700_000)], first_offset=2)  # fmt: skip
    bronze.land_batch(features, own_lake, app_id="a", batch_id=1, existing=set())
    after = _tables(spark, own_lake)
    assert after["edge_features"] == (3, created["edge_features"][1] + 1)
    assert after["telemetry"] == (3, created["telemetry"][1] + 1)
    # Nothing was refused and nothing else came: the other tables gain no version.
    assert after["lifecycle"] == created["lifecycle"]
    assert after["dead_letter"] == created["dead_letter"]
