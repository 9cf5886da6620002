"""Bronze layer: Kafka to Delta, append only, exactly once. Telemetry, lifecycle events and edge
dead letters land in their tables; records that do not parse land in bronze.dead_letter."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from plantlake.config import Settings
from plantlake.contracts import (
    BRONZE_DEAD_LETTER,
    BRONZE_LIFECYCLE,
    BRONZE_TELEMETRY,
    EDGE_DEAD_LETTER_RECORD,
    LIFECYCLE_KINDS,
    LIFECYCLE_RECORD,
    QUALITIES,
    RECORD_SCHEMA_VERSION,
    TELEMETRY_RECORD,
)
from plantlake.contracts import Column as ContractColumn
from plantlake.ingest.forwarder import INSTANCE_HEADER, SEQ_HEADER
from plantlake.pipelines.delta_io import append_once, read_kafka_stream, writer_id
from plantlake.pipelines.schemas import record_schema
from plantlake.topics import topic

LINEAGE = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
# Set by the edge forwarder: (edge_instance, edge_seq) names one edge record, so a record that
# reached Kafka twice (edge crash between Kafka's ack and the buffer's) can be recognised.
EDGE_IDENTITY = ("edge_instance", "edge_seq")
TOPIC_KEYS = ("telemetry", "lifecycle", "dead_letter")


def _header(name: str) -> Column:
    """A Kafka header's value as a string, or null when absent."""
    matches = F.filter(F.col("headers"), lambda h: h["key"] == F.lit(name))
    return F.when(F.size(matches) > 0, matches[0]["value"].cast("string"))


# What a JSON value of each contract type may start with. Spark's JSON reader is lenient: it
# turns `"value": "hot"` into null and `"asset": 42` into "42", so the raw text is checked too.
_JSON_VALUE = {
    "string": r'"',
    "int": r"-?\d+\s*+[,}]",
    "long": r"-?\d+\s*+[,}]",
    "double": r"-?\d|NaN\b",  # NaN: the contract allows it for a missing value
}


def _type_errors(text: Column, columns: Sequence[ContractColumn]) -> list[Column]:
    """One reason per field whose JSON value has the wrong type (null is left to nullability).

    Records are flat objects, so a field is a key at any depth; a key inside a string value is
    preceded by an escaped quote, which the look-behind skips. Whitespace is matched
    possessively (`*+`): a backtracking star could match none and test the look-ahead on a space.
    """
    return [
        F.when(
            text.rlike(rf'(?<!\\)"{c.name}"\s*+:\s*+(?!null\b|{_JSON_VALUE[c.type]})'),
            F.lit(f"{c.name} should be a JSON {c.type}"),
        )
        for c in columns
        if c.type in _JSON_VALUE
    ]


def _parse_error(
    rec: Column, columns: Sequence[ContractColumn], checks: Sequence[Column]
) -> Column:
    """Why a parsed record breaks its contract, or null when it does not."""
    reasons = [
        F.when(rec[c.name].isNull(), F.lit(f"{c.name} is missing or of the wrong type"))
        for c in columns
        if not c.nullable
    ]
    joined = F.concat_ws("; ", *reasons, *checks)
    return (
        F.when(~F.col("_json_ok"), F.lit("payload is not a JSON object"))
        .when(joined == "", F.lit(None))
        .otherwise(joined)
    )


def parse_records(
    kafka_rows: DataFrame, columns: Sequence[ContractColumn], *, checks=()
) -> DataFrame:
    """Kafka rows to parsed rows with `rec` (the record struct) and `parse_error`.

    Grain in and out: one Kafka record. `checks` are extra reasons (Columns, null when fine)
    computed from `rec`; rows whose `parse_error` is null keep their contract.
    """
    text = F.col("value").cast("string")
    parsed = kafka_rows.select(
        F.col("key").cast("string").alias("kafka_key"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("value").alias("raw_value"),
        _header(INSTANCE_HEADER).alias("edge_instance"),
        _header(SEQ_HEADER).cast("long").alias("edge_seq"),
        # from_json turns malformed text into nulls; a JSON object always has a type.
        (F.get_json_object(text, "$").isNotNull() & text.startswith("{")).alias("_json_ok"),
        F.from_json(text, record_schema(columns), {"mode": "PERMISSIVE"}).alias("rec"),
        F.concat_ws("; ", *_type_errors(text, columns)).alias("_type_errors"),
    )
    rec = F.col("rec")
    typed = F.when(F.col("_type_errors") != "", F.col("_type_errors"))
    error = _parse_error(rec, columns, [typed, *(check(rec) for check in checks)])
    return parsed.withColumn("parse_error", error).drop("_json_ok", "_type_errors")


def _telemetry_checks() -> tuple:
    return (
        lambda rec: F.when(
            ~rec["quality"].isin(*QUALITIES), F.lit("quality is not Good/Uncertain/Bad")
        ),
        lambda rec: F.when(
            rec["schema_version"] != RECORD_SCHEMA_VERSION, F.lit("unsupported schema_version")
        ),
    )


def parse_telemetry(kafka_rows: DataFrame) -> DataFrame:
    """Kafka telemetry rows parsed as canonical records (see `parse_records`)."""
    return parse_records(kafka_rows, TELEMETRY_RECORD, checks=_telemetry_checks())


def parse_lifecycle(kafka_rows: DataFrame) -> DataFrame:
    check = lambda rec: F.when(~rec["kind"].isin(*LIFECYCLE_KINDS), F.lit("unknown lifecycle kind"))  # noqa: E731
    return parse_records(kafka_rows, LIFECYCLE_RECORD, checks=(check,))


def parse_edge_dead_letters(kafka_rows: DataFrame) -> DataFrame:
    return parse_records(kafka_rows, EDGE_DEAD_LETTER_RECORD)


def telemetry_rows(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.telemetry: the record, event/receive time, lineage, raw payload."""
    return parsed.where(F.col("parse_error").isNull()).select(
        *(F.col(f"rec.{c.name}").alias(c.name) for c in TELEMETRY_RECORD),
        F.timestamp_millis(F.col("rec.event_time_ms")).alias("event_time"),
        F.timestamp_millis(F.col("rec.receive_time_ms")).alias("receive_time"),
        "kafka_key", *LINEAGE, *EDGE_IDENTITY, "raw_value",
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def lifecycle_rows(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.lifecycle: the event, its times as timestamps, lineage."""
    return parsed.where(F.col("parse_error").isNull()).select(
        *(F.col(f"rec.{c.name}").alias(c.name) for c in LIFECYCLE_RECORD),
        F.timestamp_millis(F.col("rec.event_time_ms")).alias("event_time"),
        F.timestamp_millis(F.col("rec.receive_time_ms")).alias("receive_time"),
        "kafka_key", *LINEAGE, *EDGE_IDENTITY,
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def dead_letter_rows(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.dead_letter for records bronze could not parse: what arrived and why."""
    return parsed.where(F.col("parse_error").isNotNull()).select(
        "kafka_key", *LINEAGE, *EDGE_IDENTITY, "raw_value",
        F.col("parse_error").alias("reason"),
        F.lit("bronze").alias("refused_by"),
        F.lit(None).cast("string").alias("source_protocol"),
        F.lit(None).cast("string").alias("source_node"),
        F.lit(None).cast("string").alias("origin"),
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def edge_dead_letter_rows(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.dead_letter for input an edge process refused: its reason, raw bytes, origin."""
    return parsed.where(F.col("parse_error").isNull()).select(
        "kafka_key", *LINEAGE, *EDGE_IDENTITY,
        F.unbase64(F.col("rec.raw")).alias("raw_value"),
        F.col("rec.reason").alias("reason"),
        F.lit("edge").alias("refused_by"),
        F.col("rec.source_protocol").alias("source_protocol"),
        F.col("rec.source_node").alias("source_node"),
        F.col("rec.origin").alias("origin"),
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def land_batch(batch: DataFrame, settings: Settings, *, app_id: str, batch_id: int) -> None:
    """Split one micro-batch by topic and append each part to its table, exactly once."""
    prefix = settings.kafka.topic_prefix
    names = {key: topic(key).name(prefix) for key in TOPIC_KEYS}
    batch = batch.persist()
    try:
        telemetry = parse_telemetry(batch.where(F.col("topic") == names["telemetry"]))
        lifecycle = parse_lifecycle(batch.where(F.col("topic") == names["lifecycle"]))
        edge_dead = parse_edge_dead_letters(batch.where(F.col("topic") == names["dead_letter"]))
        dead = (
            dead_letter_rows(telemetry)
            .unionByName(dead_letter_rows(lifecycle))
            .unionByName(dead_letter_rows(edge_dead))
            .unionByName(edge_dead_letter_rows(edge_dead))
        )
        lake = settings.lake
        append_once(
            telemetry_rows(telemetry), BRONZE_TELEMETRY.path(lake), app_id=app_id, batch_id=batch_id
        )
        append_once(
            lifecycle_rows(lifecycle), BRONZE_LIFECYCLE.path(lake), app_id=app_id, batch_id=batch_id
        )
        append_once(dead, BRONZE_DEAD_LETTER.path(lake), app_id=app_id, batch_id=batch_id)
    finally:
        batch.unpersist()


def run(spark: SparkSession, settings: Settings, *, once: bool) -> StreamingQuery:
    """Start the bronze query; `once` processes what is available now and stops."""
    checkpoint = settings.lake.checkpoint_path("bronze")
    app_id = f"bronze:{writer_id(spark, checkpoint)}"
    topics = [topic(key).name(settings.kafka.topic_prefix) for key in TOPIC_KEYS]
    source = read_kafka_stream(spark, settings, ",".join(topics), max_per_trigger=500_000)
    writer = source.writeStream.queryName("bronze").option("checkpointLocation", checkpoint)
    writer = (
        writer.trigger(availableNow=True) if once else writer.trigger(processingTime="5 seconds")
    )
    return writer.foreachBatch(
        lambda batch, batch_id: land_batch(batch, settings, app_id=app_id, batch_id=batch_id)
    ).start()
