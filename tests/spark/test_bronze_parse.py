"""The bronze parsing transform on DataFrames: canonical rows pass, every kind of bad row is refused."""

import datetime as dt

import orjson
import pytest
from pyspark.sql import functions as F

from plantlake.app.demo import demo_readings
from plantlake.core.contracts import TELEMETRY_RECORD
from plantlake.core.records import DeadLetter, LifecycleEvent, LifecycleKind
from plantlake.pipelines.jobs import bronze
from plantlake.pipelines.jobs.bronze import (
    dead_letter_rows,
    edge_dead_letter_rows,
    lifecycle_rows,
    parse_edge_dead_letters,
    parse_lifecycle,
    parse_telemetry,
    telemetry_rows,
)

pytestmark = pytest.mark.spark


def _kafka_rows(spark, payloads: list[bytes], headers=None):
    """Rows shaped like the Kafka source's (with includeHeaders)."""
    ts = dt.datetime(2026, 1, 1)
    rows = [(b"k", p, "plantlake.telemetry", 0, i, ts, headers) for i, p in enumerate(payloads)]
    return spark.createDataFrame(
        rows,
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
        "headers array<struct<key:string, value:binary>>",
    )


def test_canonical_records_land_with_lineage_and_times(spark):
    records = list(demo_readings("t", count=3, start_ms=1_767_225_600_000))
    parsed = parse_telemetry(_kafka_rows(spark, [orjson.dumps(r) for r in records]))
    rows = telemetry_rows(parsed).orderBy("kafka_offset").collect()
    assert [r.kafka_offset for r in rows] == [0, 1, 2]
    assert rows[0].asset == records[0]["asset"]
    assert rows[0].value == records[0]["value"]
    assert rows[0].event_time == dt.datetime(2026, 1, 1, 0, 0, 0)
    assert rows[0].raw_value == orjson.dumps(records[0])
    assert dead_letter_rows(parsed).count() == 0


def test_bad_records_go_to_dead_letter_with_reasons(spark):
    good = next(demo_readings("t", count=1, start_ms=0))
    payloads = [
        b"not json at all",
        b'["a", "list"]',
        orjson.dumps({k: v for k, v in good.items() if k != "asset"}),
        orjson.dumps(good | {"quality": "Fine"}),
        orjson.dumps(good | {"schema_version": 9}),
        orjson.dumps(good | {"event_time_ms": "yesterday"}),
    ]
    parsed = parse_telemetry(_kafka_rows(spark, payloads))
    assert telemetry_rows(parsed).count() == 0
    reasons = {r.kafka_offset: r.reason for r in dead_letter_rows(parsed).collect()}
    assert reasons[0] == "payload is not a JSON object"
    assert reasons[1] == "payload is not a JSON object"
    assert reasons[2] == "asset is missing or of the wrong type"
    assert reasons[3] == "quality is not Good/Uncertain/Bad"
    assert reasons[4] == "unsupported schema_version"
    assert "event_time_ms is missing or of the wrong type" in reasons[5]


def test_nothing_is_lost_between_the_two_outputs(spark):
    good = [orjson.dumps(r) for r in demo_readings("t", count=7, start_ms=0)]
    parsed = parse_telemetry(_kafka_rows(spark, good + [b"{", b"", b"null"]))
    assert telemetry_rows(parsed).count() + dead_letter_rows(parsed).count() == 10


def test_edge_identity_comes_from_the_forwarder_headers(spark):
    record = orjson.dumps(next(demo_readings("t", count=1, start_ms=0)))
    headers = [("plantlake-edge-instance", b"abc"), ("plantlake-edge-seq", b"42")]
    with_headers = telemetry_rows(parse_telemetry(_kafka_rows(spark, [record], headers))).first()
    assert (with_headers.edge_instance, with_headers.edge_seq) == ("abc", 42)
    without = telemetry_rows(parse_telemetry(_kafka_rows(spark, [record]))).first()
    assert (without.edge_instance, without.edge_seq) == (None, None)


def test_lifecycle_events_land_and_bad_ones_are_refused(spark):
    death = LifecycleEvent(
        LifecycleKind.DEATH, "sparkplug", "line1-gateway", 1_000, 1_005, bd_seq=3
    )
    payloads = [
        orjson.dumps(death.to_record()),
        orjson.dumps(death.to_record() | {"kind": "exploded"}),
    ]
    parsed = parse_lifecycle(_kafka_rows(spark, payloads))
    [row] = lifecycle_rows(parsed).collect()
    assert (row.kind, row.source_node, row.bd_seq, row.asset) == ("death", "line1-gateway", 3, None)
    [bad] = dead_letter_rows(parsed).collect()
    assert bad.reason == "unknown lifecycle kind" and bad.refused_by == "bronze"


def test_edge_dead_letters_keep_the_edge_reason_and_the_raw_bytes(spark):
    letter = DeadLetter(
        "sparkplug", "line1-gateway", "unknown alias 99", b"\x00\xffraw", 7, origin="spBv1.0/x"
    )
    parsed = parse_edge_dead_letters(_kafka_rows(spark, [orjson.dumps(letter.to_record())]))
    [row] = edge_dead_letter_rows(parsed).collect()
    assert (row.reason, row.refused_by, row.source_protocol) == (
        "unknown alias 99",
        "edge",
        "sparkplug",
    )
    assert row.raw_value == b"\x00\xffraw" and row.origin == "spBv1.0/x"


def test_a_value_of_the_wrong_json_type_is_named_with_the_type_it_should_have(spark):
    good = next(demo_readings("t", count=1, start_ms=0))
    changes = [
        {"value": "hot"},  # from_json: null
        {"value": "NaN"},  # from_json: NaN, but a JSON string
        {"asset": 42},  # from_json: "42"
        {"sensor": {"name": "temperature"}},
        {"unit": True},
        {"sequence": ""},  # from_json: null, and no corrupt record
        {"sequence": 1.5},
    ]
    payloads = [orjson.dumps(good | change) for change in changes]
    payloads.append(orjson.dumps(good | {"sequence": None, "unit": None}))  # nulls are fine
    parsed = parse_telemetry(_kafka_rows(spark, payloads))
    reasons = {r.kafka_offset: r.parse_error for r in parsed.collect()}
    assert reasons == {
        0: "value should be a JSON double",
        1: "value should be a JSON double",
        2: "asset should be a JSON string",
        3: "sensor should be a JSON string",
        4: "unit should be a JSON string",
        5: "sequence should be a JSON long",
        6: "sequence should be a JSON long",
        7: None,
    }


def test_canonical_records_are_checked_without_the_raw_text_regexes(spark):
    # The regexes are the slow path; a canonical record (NaN-free) must not need them.
    records = list(demo_readings("t", count=50, start_ms=0))
    records[0] |= {"sequence": None, "filter_version": "v3", "unit": None}
    kafka_rows = _kafka_rows(spark, [orjson.dumps(r) for r in records])
    text = F.col("value").cast("string")
    rec = F.from_json(text, bronze._schema(TELEMETRY_RECORD), bronze._JSON_OPTIONS)
    slow = kafka_rows.where(bronze._needs_regexes(text, rec, TELEMETRY_RECORD))
    assert slow.count() == 0


def test_a_batch_of_every_topic_is_parsed_once_and_split_by_kind(spark):
    reading = orjson.dumps(next(demo_readings("t", count=1, start_ms=0)))
    death = LifecycleEvent(LifecycleKind.DEATH, "sparkplug", "gw", 1_000, 1_005, bd_seq=3)
    letter = DeadLetter("modbus", "plc", "bad register", b"\x01", 7)
    feature = orjson.dumps(
        next(demo_readings("t", count=1, start_ms=0)) | {"sensor": "vibration.band_50_200"}
    )
    rows = [
        (b"k", reading, "p.telemetry", 0, 0, None, None),
        (b"k", b"{broken", "p.telemetry", 0, 1, None, None),
        (b"k", feature, "p.edge_features", 0, 0, None, None),
        (b"k", b'{"sensor": 3}', "p.edge_features", 0, 1, None, None),
        (b"k", orjson.dumps(death.to_record()), "p.lifecycle", 0, 0, None, None),
        (b"k", orjson.dumps(letter.to_record()), "p.dead_letter", 0, 0, None, None),
    ]
    batch = spark.createDataFrame(rows, _kafka_rows(spark, []).schema)
    topics = {
        "telemetry": "p.telemetry",
        "edge_features": "p.edge_features",
        "lifecycle": "p.lifecycle",
        "dead_letter": "p.dead_letter",
    }
    parsed = bronze.parse_batch(batch, topics=topics)
    [reading_row] = telemetry_rows(
        bronze.records_of(parsed, "telemetry").where("kafka_topic = 'p.telemetry'")
    ).collect()
    assert reading_row.raw_value == reading
    # Window features are canonical records of their own topic, held to the same contract.
    readings = bronze.records_of(parsed, "telemetry")
    [feature_row] = telemetry_rows(readings.where("kafka_topic = 'p.edge_features'")).collect()
    assert (feature_row.sensor, feature_row.raw_value) == ("vibration.band_50_200", feature)
    [event] = lifecycle_rows(bronze.records_of(parsed, "lifecycle")).collect()
    assert (event.kind, event.bd_seq) == ("death", 3)
    [edge] = edge_dead_letter_rows(bronze.records_of(parsed, "dead_letter")).collect()
    assert (edge.reason, edge.raw_value) == ("bad register", b"\x01")
    letters = bronze.batch_dead_letters(parsed).orderBy("refused_by", "kafka_topic").collect()
    bad_feature, bad, edge_letter = letters
    assert (bad.kafka_topic, bad.reason) == ("p.telemetry", "payload is not a JSON object")
    assert bad_feature.kafka_topic == "p.edge_features" and "sensor" in bad_feature.reason
    assert edge_letter.refused_by == "edge"
    assert bronze._part_sizes(parsed, features_topic="p.edge_features") == {
        "telemetry": 1, "edge_features": 1, "lifecycle": 1, "dead_letter": 3,
    }  # fmt: skip


def test_a_time_that_is_no_epoch_millisecond_is_refused_naming_the_field(spark):
    # Nanosecond and microsecond stamps are valid longs beyond Spark's timestamp range;
    # timestamp_millis on them stopped bronze for good (ArithmeticException: long overflow).
    records = list(demo_readings("t", count=4, start_ms=1_767_225_600_000))
    records[0]["event_time_ms"] *= 1_000_000
    records[1]["receive_time_ms"] *= 1_000
    records[2]["event_time_ms"] = -1
    parsed = parse_telemetry(_kafka_rows(spark, [orjson.dumps(r) for r in records]))
    errors = dict(parsed.select("kafka_offset", "parse_error").collect())
    assert errors[0] == (
        f"event_time_ms {records[0]['event_time_ms']} is not an epoch-millisecond time "
        "(1970 to 2100)"
    )
    assert errors[1].startswith("receive_time_ms ") and "epoch-millisecond" in errors[1]
    assert errors[2].startswith("event_time_ms -1 ")
    assert errors[3] is None
    [kept] = telemetry_rows(parsed).collect()
    assert kept.kafka_offset == 3 and kept.event_time is not None


def test_a_lifecycle_event_time_that_is_no_epoch_millisecond_is_refused(spark):
    death = LifecycleEvent(LifecycleKind.DEATH, "sparkplug", "gw", 2**62, 1_005, bd_seq=3)
    parsed = parse_lifecycle(_kafka_rows(spark, [orjson.dumps(death.to_record())]))
    [row] = dead_letter_rows(parsed).collect()
    assert row.reason.startswith(f"event_time_ms {2**62} is not an epoch-millisecond time")
