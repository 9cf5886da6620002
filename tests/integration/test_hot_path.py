"""The hot path against the real Kafka and MinIO: the twin it commits through delta-rs, what it
holds back, liveness from lifecycle events, the asset_state topic, and idempotent replay."""

import time
import uuid

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from plantlake.core.contracts import GOLD_TWIN_STATE
from plantlake.core.topics import topic
from plantlake.pipelines.jobs.hot_path import HotPath
from plantlake.pipelines.jobs.twin_store import open_table
from plantlake.services.minio import delta_rs_options
from tests.lake_contract import assert_tables_match_contract

pytestmark = pytest.mark.integration

PRESS, PUMP = "plant1/line1/press-01", "plant1/line1/pump-02"


def _reading(asset, sensor, value, unit, t_ms, *, quality="Good", node="line1-gateway"):
    return {
        "schema_version": 1, "asset": asset, "sensor": sensor, "value": value, "unit": unit,
        "quality": quality, "event_time_ms": t_ms, "receive_time_ms": t_ms + 40,
        "source_protocol": "sparkplug", "source_node": node, "sequence": None,
        "filter_version": "test",
    }  # fmt: skip


def _send(settings, key, records, raw=()):
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    name = topic(key).name(settings.kafka.topic_prefix)
    for record in records:
        producer.produce(
            name, key=(record.get("asset") or "x").encode(), value=orjson.dumps(record)
        )
    for payload in raw:
        producer.produce(name, key=b"x", value=payload)
    assert producer.flush(10) == 0


def _twin(settings):
    table = open_table(GOLD_TWIN_STATE.path(settings.lake), delta_rs_options(settings))
    rows = table.to_pyarrow_table().to_pylist()
    return table, {(r["asset"], r["sensor"]): r for r in rows}


def _asset_state(settings):
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic("asset_state").name(settings.kafka.topic_prefix)])
    messages, deadline = [], time.monotonic() + 20
    while time.monotonic() < deadline:
        batch = consumer.consume(500, timeout=2)
        if not batch and messages:
            break
        messages += [m for m in batch if m.error() is None]
    consumer.close()
    return [(m.key().decode(), orjson.loads(m.value())) for m in messages]


def test_the_twin_holds_the_newest_kept_good_value_and_liveness(hot_lake):
    now = int(time.time() * 1000)
    t = now - 60_000
    _send(hot_lake, "telemetry", [
        _reading(PRESS, "bearing_temperature", 61.0, "degC", t),
        _reading(PRESS, "bearing_temperature", 62.5, "degC", t + 2000),
        _reading(PRESS, "bearing_temperature", 55.0, "degC", t + 1000),  # older, arrives late
        _reading(PRESS, "bearing_temperature", 600.0, "degC", t + 3000),  # implausible: held back
        _reading(PRESS, "bearing_temperature", 70.0, "degC", t + 4000, quality="Bad"),
        _reading(PRESS, "hydraulic_pressure", 2900.0, "psi", t),  # converted to bar
        _reading(PRESS, "hydraulic_pressure", 210.0, "furlong", t + 1000),  # unknown unit
        _reading(PUMP, "bearing_temperature", 140.0, "degF", t, node="line2-gateway"),
        _reading("plant1/line9/ghost", "bearing_temperature", 50.0, "degC", t),  # unregistered
        _reading(PRESS, "running", 1.0, "", t * 1_000_000),  # a nanosecond stamp: refused
    ], raw=[b"not json", b'{"asset": 42}'])  # fmt: skip
    _send(hot_lake, "lifecycle", [{
        "kind": "death", "source_protocol": "sparkplug", "source_node": "line2-gateway",
        "event_time_ms": t + 5000, "receive_time_ms": t + 5000, "device": None, "asset": None,
        "bd_seq": 1, "detail": "NDEATH",
    }])  # fmt: skip

    stats = HotPath(hot_lake, log=print).run(once=True)

    table, twin = _twin(hot_lake)
    assert set(twin) == {(PRESS, "bearing_temperature"), (PRESS, "hydraulic_pressure"),
                         (PUMP, "bearing_temperature")}  # fmt: skip
    press = twin[PRESS, "bearing_temperature"]
    assert (press["value"], press["event_time_ms"], press["status"]) == (62.5, t + 2000, "alive")
    assert twin[PRESS, "hydraulic_pressure"]["value"] == pytest.approx(199.948, abs=1e-3)
    assert twin[PRESS, "hydraulic_pressure"]["unit"] == "bar"
    pump = twin[PUMP, "bearing_temperature"]
    assert pump["value"] == pytest.approx(60.0)
    assert pump["status"] == "dead" and pump["status_reason"].startswith("edge node line2-gateway")
    assert (stats.refused, stats.held_back, stats.lifecycle_events) == (3, 3, 1)

    # The changed rows went to asset_state, keyed asset/sensor, after the twin commit.
    announced = dict(_asset_state(hot_lake))
    assert announced[f"{PRESS}/bearing_temperature"]["value"] == 62.5
    assert announced[f"{PUMP}/bearing_temperature"]["status"] == "dead"
    assert announced[f"{PRESS}/bearing_temperature"]["twin_version"] == table.version()

    # Offsets were committed after the commit: a second run finds nothing new to fold.
    again = HotPath(hot_lake, log=print).run(once=True)
    assert again.readings == 0

    # A replay of everything (a fresh group, as after lost offsets) changes no value.
    replay = hot_lake.model_copy(update={"hot_path": hot_lake.hot_path.model_copy(
        update={"group_id": hot_lake.hot_path.group_id + "-replay"})})  # fmt: skip
    assert HotPath(replay, log=print).run(once=True).readings == 12
    _, replayed = _twin(hot_lake)
    values = ("value", "event_time_ms", "kafka_offset", "status")
    assert {k: [r[c] for c in values] for k, r in replayed.items()} == {
        k: [r[c] for c in values] for k, r in twin.items()
    }


def test_the_cold_path_finds_the_twin_reconciled_with_silver(hot_lake, spark):
    from plantlake.core.contracts import SILVER_DQ_METRICS
    from plantlake.pipelines.jobs import bronze, cold_path

    t = int(time.time() * 1000) - 30_000
    _send(hot_lake, "telemetry", [
        *(_reading(PRESS, "bearing_temperature", 60.0 + i, "degC", t + i * 1000) for i in range(5)),
        _reading(PRESS, "bearing_temperature", 600.0, "degC", t + 6000),  # held back by both
        _reading(PRESS, "hydraulic_pressure", 2900.0, "psi", t),
        _reading(PUMP, "bearing_temperature", 140.0, "degF", t, node="line2-gateway"),
    ])  # fmt: skip
    HotPath(hot_lake, log=print).run(once=True)
    for job in (bronze, cold_path):
        query = job.run(spark, hot_lake, once=True)
        query.awaitTermination()
        assert query.exception() is None
    metrics = spark.read.format("delta").load(SILVER_DQ_METRICS.path(hot_lake.lake))
    [row] = metrics.where("rule = 'twin_reconciliation'").collect()
    assert (row.checked, row.passed, row.failed) == (3, 3, 0)
    assert_tables_match_contract(spark, hot_lake.lake, (
        "bronze.telemetry", "reference.units", "reference.asset_registry", "silver.telemetry",
        "silver.quarantine", "silver.dq_metrics", "silver.rule_state", "gold.twin_state",
    ))  # fmt: skip
