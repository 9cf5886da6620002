"""Bronze layer: Kafka telemetry to Delta, append only, exactly once, bad records to dead letter."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from plantlake.config import Settings
from plantlake.contracts import (
    BRONZE_DEAD_LETTER,
    BRONZE_TELEMETRY,
    QUALITIES,
    RECORD_SCHEMA_VERSION,
    TELEMETRY_RECORD,
)
from plantlake.ingest.forwarder import INSTANCE_HEADER, SEQ_HEADER
from plantlake.pipelines.delta_io import append_once, read_kafka_stream, writer_id
from plantlake.pipelines.schemas import telemetry_record_schema
from plantlake.topics import topic

LINEAGE = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
# Set by the edge forwarder: (edge_instance, edge_seq) names one edge record, so a record that
# reached Kafka twice (edge crash between Kafka's ack and the buffer's) can be recognised.
EDGE_IDENTITY = ("edge_instance", "edge_seq")


def _header(name: str) -> Column:
    """A Kafka header's value as a string, or null when absent."""
    matches = F.filter(F.col("headers"), lambda h: h["key"] == F.lit(name))
    return F.when(F.size(matches) > 0, matches[0]["value"].cast("string"))


def _parse_error(rec: Column) -> Column:
    """Why a parsed record is not canonical, or null when it is."""
    reasons = [
        F.when(rec[c.name].isNull(), F.lit(f"{c.name} is missing or of the wrong type"))
        for c in TELEMETRY_RECORD
        if not c.nullable
    ]
    reasons.append(
        F.when(~rec["quality"].isin(*QUALITIES), F.lit("quality is not Good/Uncertain/Bad"))
    )
    reasons.append(
        F.when(rec["schema_version"] != RECORD_SCHEMA_VERSION, F.lit("unsupported schema_version"))
    )
    joined = F.concat_ws("; ", *reasons)
    return (
        F.when(~F.col("_json_ok"), F.lit("payload is not a JSON object"))
        .when(joined == "", F.lit(None))
        .otherwise(joined)
    )


def parse_telemetry(kafka_rows: DataFrame) -> DataFrame:
    """Kafka rows (one per message) to parsed rows, one per message, with `parse_error`.

    Grain in and out: one Kafka record. Rows whose `parse_error` is null are canonical records.
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
        F.from_json(text, telemetry_record_schema(), {"mode": "PERMISSIVE"}).alias("rec"),
    )
    return parsed.withColumn("parse_error", _parse_error(F.col("rec"))).drop("_json_ok")


def telemetry_rows(parsed: DataFrame) -> DataFrame:
    """Canonical rows of bronze.telemetry: the record, event/receive time, lineage, raw payload."""
    return parsed.where(F.col("parse_error").isNull()).select(
        *(F.col(f"rec.{c.name}").alias(c.name) for c in TELEMETRY_RECORD),
        F.timestamp_millis(F.col("rec.event_time_ms")).alias("event_time"),
        F.timestamp_millis(F.col("rec.receive_time_ms")).alias("receive_time"),
        "kafka_key", *LINEAGE, *EDGE_IDENTITY, "raw_value",
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def dead_letter_rows(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.dead_letter: what arrived, where from, and why it was refused."""
    return parsed.where(F.col("parse_error").isNotNull()).select(
        "kafka_key", *LINEAGE, "raw_value",
        F.col("parse_error").alias("reason"),
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def run(spark: SparkSession, settings: Settings, *, once: bool) -> StreamingQuery:
    """Start the bronze query; `once` processes what is available now and stops."""
    checkpoint = settings.lake.checkpoint_path("bronze_telemetry")
    app_id = f"bronze:{writer_id(spark, checkpoint)}"
    telemetry_path = BRONZE_TELEMETRY.path(settings.lake)
    dead_letter_path = BRONZE_DEAD_LETTER.path(settings.lake)

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        parsed = parse_telemetry(batch).persist()
        try:
            append_once(telemetry_rows(parsed), telemetry_path, app_id=app_id, batch_id=batch_id)
            append_once(
                dead_letter_rows(parsed), dead_letter_path, app_id=app_id, batch_id=batch_id
            )
        finally:
            parsed.unpersist()

    source = read_kafka_stream(
        spark, settings, topic("telemetry").name(settings.kafka.topic_prefix),
        max_per_trigger=500_000,
    )  # fmt: skip
    writer = source.writeStream.queryName("bronze_telemetry").option(
        "checkpointLocation", checkpoint
    )
    writer = (
        writer.trigger(availableNow=True) if once else writer.trigger(processingTime="5 seconds")
    )
    return writer.foreachBatch(write_batch).start()
