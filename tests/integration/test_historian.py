"""The historian backfill lands every reading on the telemetry topic and every edge window feature
on the edge_features topic, keyed by asset, in the canonical record layout, and writes the CMMS
export of the same plant and span."""

import csv
import time
import uuid
from collections import defaultdict

import orjson
import pytest
from confluent_kafka import Consumer
from rich.console import Console

from plantlake.core.contracts import record_errors
from plantlake.core.topics import topic
from plantlake.ingest.filters import load_filter_config, window_feature_names
from plantlake.simulator.historian import HISTORIAN, backfill

pytestmark = pytest.mark.integration

ASSET = "plant1/line1/pump-02"


def _consume(settings, name: str, expected: int) -> list:
    consumer = Consumer({
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": f"test-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe([name])
    messages = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, timeout=0.5)
            messages += [m for m in batch if not m.error()]
            if not batch and len(messages) >= expected:
                break  # nothing more after the expected count: no extra records either
    finally:
        consumer.close()
    return messages


def test_backfill_of_two_hours_arrives_whole_keyed_by_asset(isolated_kafka, tmp_path):
    cmms = tmp_path / "cmms_export.csv"
    result = backfill(isolated_kafka, days=2 / 24, step_ms=60_000, assets=[ASSET],
                      console=Console(stderr=True), cmms_path=cmms)  # fmt: skip
    name = topic("telemetry").name(isolated_kafka.kafka.topic_prefix)
    assert result.topic == name
    assert (result.steps, result.sensors, result.records) == (120, 5, 600)

    messages = _consume(isolated_kafka, name, result.records)
    assert len(messages) == result.records
    assert {m.key() for m in messages} == {ASSET.encode()}
    assert len({m.partition() for m in messages}) == 1  # keyed: one asset, one partition
    records = [orjson.loads(m.value()) for m in messages]
    assert all(record_errors(r) == [] for r in records)
    assert {(r["asset"], r["source_protocol"], r["source_node"]) for r in records} == {
        (ASSET, HISTORIAN, HISTORIAN)
    }
    times = defaultdict(list)
    for r in records:
        times[r["sensor"]].append(r["event_time_ms"])
    assert set(times) == {"bearing_temperature", "discharge_pressure", "flow", "motor_current",
                          "vibration"}  # fmt: skip
    expected = [result.first_ms + k * 60_000 for k in range(120)]
    assert all(t == expected for t in times.values())  # in order, on the grid, none missing
    assert result.first_ms < result.end_ms <= result.first_ms + 120 * 60_000

    # One window of features per step of the pump's one high-rate sensor, nothing raw.
    features = topic("edge_features").name(isolated_kafka.kafka.topic_prefix)
    names = window_feature_names(load_filter_config(isolated_kafka.edge.filters))
    assert result.features_topic == features and result.feature_records == 120 * len(names)
    messages = _consume(isolated_kafka, features, result.feature_records)
    assert len(messages) == result.feature_records
    assert {m.key() for m in messages} == {ASSET.encode()}
    records = [orjson.loads(m.value()) for m in messages]
    assert all(record_errors(r) == [] for r in records)
    assert {(r["source_protocol"], r["source_node"], r["sequence"]) for r in records} == {
        (HISTORIAN, HISTORIAN, None)
    }
    times = defaultdict(list)
    for r in records:
        times[r["sensor"]].append(r["event_time_ms"])
    assert set(times) == {f"vibration.{n}" for n in names}
    assert all(t == expected for t in times.values())

    # The plant started at the midnight before the history, so no failure is due yet.
    with cmms.open() as handle:
        assert next(csv.reader(handle)) == ["asset", "event", "failure_mode", "time_ms"]
    assert result.cmms_events == 0 and result.cmms_path == cmms
