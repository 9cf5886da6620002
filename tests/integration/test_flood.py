"""A flood of malformed records: continuous bronze keeps running, routes each record exactly once."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from pyspark.sql import functions as F

from plantlake.adapters.delta import table_exists
from plantlake.adapters.kafka import producer_config
from plantlake.app.demo import demo_readings
from plantlake.core.contracts import BRONZE_DEAD_LETTER, BRONZE_TELEMETRY, record_errors
from plantlake.core.topics import topic
from plantlake.pipelines.jobs import bronze

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

T0 = 1_767_225_600_000
NOT_JSON = "payload is not a JSON object"
REQUIRED = ("schema_version", "asset", "sensor", "quality", "event_time_ms", "receive_time_ms",
            "source_protocol", "source_node")  # fmt: skip


def good_record(i: int) -> dict:
    [record] = demo_readings(f"flood-{i}", count=1, start_ms=T0 + i * 1000)
    return record


def malformed(rng: random.Random, i: int) -> tuple[str, bytes | None, str]:
    """One malformed payload: (kind, bytes or None for a tombstone, what its reason must say)."""
    record = good_record(i)
    text = json.dumps(record)
    kind = rng.choice(("junk", "truncated", "not_object", "empty", "tombstone", "missing",
                       "wrong_type", "bad_quality", "bad_version"))  # fmt: skip
    if kind == "junk":
        return kind, rng.randbytes(rng.randint(1, 64)), NOT_JSON
    if kind == "truncated":
        return kind, text[: rng.randint(1, len(text) - 1)].encode(), NOT_JSON
    if kind == "not_object":
        return kind, rng.choice((b"[1, 2]", b"42", b'"reading"', b"null", b"true")), NOT_JSON
    if kind == "empty":
        return kind, b"", NOT_JSON
    if kind == "tombstone":
        return kind, None, NOT_JSON
    if kind == "missing":
        field = rng.choice(REQUIRED)
        del record[field]
        return kind, json.dumps(record).encode(), f"{field} is missing or of the wrong type"
    if kind == "wrong_type":
        field, value = rng.choice((("event_time_ms", "yesterday"), ("event_time_ms", 1.5),
                                   ("receive_time_ms", {"ms": 1}), ("schema_version", "1"),
                                   ("schema_version", [1])))  # fmt: skip
        record[field] = value
        return kind, json.dumps(record).encode(), f"{field} is missing or of the wrong type"
    if kind == "bad_quality":
        record["quality"] = rng.choice(("Excellent", "good", 7))
        return kind, json.dumps(record).encode(), "quality is not Good/Uncertain/Bad"
    record["schema_version"] = 2
    return kind, json.dumps(record).encode(), "unsupported schema_version"


def flood(seed: int, *, bad: int, good: int) -> Iterator[tuple[bytes, bytes | None, str | None]]:
    """(key, value, expected reason or None for a good record), good ones spread among the bad."""
    rng = random.Random(seed)
    good_at = set(rng.sample(range(bad + good), good))
    for n in range(bad + good):
        if n in good_at:
            yield f"good-{n}".encode(), json.dumps(good_record(n)).encode(), None
        else:
            kind, value, reason = malformed(rng, n)
            yield f"bad-{kind}-{n}".encode(), value, reason


def _landed_rows(spark, settings) -> int:
    """Rows in bronze.telemetry and bronze.dead_letter (0 before both exist)."""
    paths = [ref.path(settings.lake) for ref in (BRONZE_TELEMETRY, BRONZE_DEAD_LETTER)]
    if not all(table_exists(spark, path) for path in paths):
        return 0
    return sum(spark.read.format("delta").load(path).count() for path in paths)


def test_bronze_survives_a_flood_of_malformed_records(spark, isolated_kafka):
    # Batches of at most 6,000 records, so the flood spans several however fast bronze is.
    pipeline = isolated_kafka.pipeline.model_copy(update={"bronze_max_offsets": 6_000})
    settings = isolated_kafka.model_copy(update={"pipeline": pipeline})
    name = topic("telemetry").name(settings.kafka.topic_prefix)
    records = list(flood(3, bad=20_000, good=300))
    expected_reason = {key: reason for key, _, reason in records if reason is not None}
    good_keys = {key for key, _, reason in records if reason is None}

    query = bronze.run(spark, settings, once=False)
    try:
        producer = Producer(producer_config(settings.kafka))
        # In four bursts, so the flood spans several micro-batches of the running query.
        for burst in range(4):
            for key, value, _ in records[burst::4]:
                producer.produce(name, key=key, value=value)
                producer.poll(0)
            assert producer.flush(30) == 0
            time.sleep(2)
            assert query.isActive, query.exception()

        # Landed rows, not the progress's numInputRows: a batch with refused records reads
        # Kafka twice, and Spark counts both reads.
        deadline = time.monotonic() + 240
        while _landed_rows(spark, settings) < len(records):
            assert query.isActive, query.exception()
            assert time.monotonic() < deadline, f"bronze is behind: {query.lastProgress}"
            time.sleep(1)
        assert query.isActive and query.exception() is None
        batches = len([p for p in query.recentProgress if p["numInputRows"]])
    finally:
        query.stop()
    assert not query.isActive and query.exception() is None
    assert batches >= 2, "the flood did not span several micro-batches"

    landed = spark.read.format("delta").load(BRONZE_TELEMETRY.path(settings.lake))
    dead = spark.read.format("delta").load(BRONZE_DEAD_LETTER.path(settings.lake))
    good_rows = [r.kafka_key.encode() for r in landed.select("kafka_key").collect()]
    assert sorted(good_rows) == sorted(good_keys)  # every good record, once
    dead_rows = dead.select("kafka_key", "reason", "refused_by").collect()
    assert len(dead_rows) == len(expected_reason)  # every malformed record, once
    assert {r.kafka_key.encode() for r in dead_rows} == set(expected_reason)
    assert {r.refused_by for r in dead_rows} == {"bronze"}
    wrong = [
        (r.kafka_key, r.reason)
        for r in dead_rows
        if not r.reason or expected_reason[r.kafka_key.encode()] not in r.reason
    ]
    assert not wrong, f"{len(wrong)} dead letters without their reason, e.g. {wrong[:5]}"
    # The raw bytes are kept as they arrived (a tombstone has none).
    raw = {key: value for key, value, _ in records}
    kept = dead.select("kafka_key", "raw_value").where(F.col("kafka_key").startswith("bad-junk"))
    assert all(bytes(r.raw_value) == raw[r.kafka_key.encode()] for r in kept.collect())


# Bug (pipelines/plantlake/pipelines/jobs/bronze.py, `_parse_error`): only non-nullable fields are checked for null, and
# Spark's from_json (partial results, the Spark 4 default) turns a wrong-typed field into null
# and any JSON scalar or object into text for a string field. So a record the contract itself
# rejects (`record_errors`) lands in bronze.telemetry with that field null or mangled.
WRONGLY_ACCEPTED = {
    "value as text": {"value": "hot"},
    "value as boolean": {"value": True},
    "sequence as text": {"sequence": "abc"},
    "asset as number": {"asset": 42},
    "sensor as object": {"sensor": {"name": "temperature"}},
    "unit as number": {"unit": 5},
}


def test_records_the_contract_rejects_never_reach_bronze_telemetry(spark):
    rows = []
    for offset, (label, change) in enumerate(WRONGLY_ACCEPTED.items()):
        record = good_record(offset) | change
        assert record_errors(record), label  # the contract says it is not a canonical record
        rows.append((label.encode(), json.dumps(record).encode(), "t", 0, offset, None, []))
    kafka_rows = spark.createDataFrame(
        rows,
        "key binary, value binary, topic string, partition int, offset long, "
        "timestamp timestamp, headers array<struct<key:string,value:binary>>",
    )
    parsed = bronze.parse_telemetry(kafka_rows)
    accepted = [r.kafka_key for r in parsed.where(F.col("parse_error").isNull()).collect()]
    assert accepted == []
