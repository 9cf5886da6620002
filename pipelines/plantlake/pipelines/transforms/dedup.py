"""Deduplication of the silver layer: readings delivered more than once by at-least-once hops.

MQTT QoS 1, an edge process resending after a crash and replays all deliver the same reading
again under a new Kafka offset. Silver's key is (asset, sensor, event_time_ms, sequence), with
`sequence` compared null-safe (most protocols have none). Within a micro-batch the earliest
Kafka offset wins (`dedup_batch`); across batches the job removes keys silver already holds
(`drop_seen`) with a left-anti join against silver.telemetry restricted to the batch's event-time
range, then appends idempotently. An anti join plus an idempotent append was chosen over a MERGE
because silver has one writer, and an append commits with `txnAppId`/`txnVersion` per batch
without relying on session-wide configuration that a MERGE would need.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

KEY: tuple[str, ...] = ("asset", "sensor", "event_time_ms", "sequence")


def dedup_batch(readings: DataFrame) -> DataFrame:
    """One reading per key, the one with the earliest Kafka (partition, offset).

    Grain in: one bronze row (a Kafka record). Grain out: one reading per silver key. Null
    sequences form one group, as grouping in Spark treats nulls as equal.
    """
    first = Window.partitionBy(*KEY).orderBy("kafka_partition", "kafka_offset", "kafka_topic")
    return (
        readings.withColumn("_dup_rank", F.row_number().over(first))
        .where(F.col("_dup_rank") == 1)
        .drop("_dup_rank")
    )


def drop_seen(readings: DataFrame, *, seen: DataFrame) -> DataFrame:
    """Readings whose key is not in `seen` (rows of silver.telemetry, at least the key columns).

    Grain in and out: one reading per key. `sequence` is compared null-safe.
    """
    keys = seen.select(*(F.col(c).alias(f"_seen_{c}") for c in KEY))
    condition = (
        (F.col("asset") == F.col("_seen_asset"))
        & (F.col("sensor") == F.col("_seen_sensor"))
        & (F.col("event_time_ms") == F.col("_seen_event_time_ms"))
        & F.col("sequence").eqNullSafe(F.col("_seen_sequence"))
    )
    return readings.join(keys, condition, "left_anti")
