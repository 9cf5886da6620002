"""The latest Good value per asset and sensor from silver rows, in Spark (gold layer transforms).

The live twin (gold.twin_state) is kept by the hot path in plain Python (`twin_fold`); this is
the same "newest wins" over silver.telemetry, which the reconciliation check compares it with.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

KEY = ("asset", "sensor")
# What "newer" means everywhere in gold (latest_state here, TwinRow.order in the hot path): event time first,
# then the later receipt (a re-sent correction), then sequence, then Kafka lineage, which is
# unique per row, so ties are broken the same way on every run and every retry.
STATE_ORDER = (
    "event_time_ms", "receive_time", "sequence", "kafka_topic", "kafka_partition", "kafka_offset",
)  # fmt: skip
STATE_COLUMNS = (
    "asset", "sensor", "asset_class", "quantity", "value", "unit", "quality",
    "event_time", "event_time_ms", "receive_time", "source_protocol", "source_node", "sequence",
    "kafka_topic", "kafka_partition", "kafka_offset",
)  # fmt: skip


def good_readings(readings: DataFrame) -> DataFrame:
    """Silver rows that carry a usable value: quality Good and a value that is neither null nor NaN.

    Grain in and out: one reading.
    """
    return readings.where(
        (F.col("quality") == "Good") & F.col("value").isNotNull() & ~F.isnan("value")
    )


def _newest_per_key(rows: DataFrame) -> DataFrame:
    """One row per (asset, sensor): the greatest by STATE_ORDER."""
    payload = [c for c in STATE_COLUMNS if c not in KEY and c not in STATE_ORDER]
    newest = F.max(F.struct(*STATE_ORDER, *payload)).alias("_newest")
    return (
        rows.groupBy(*KEY)
        .agg(newest)
        .select(*KEY, *(F.col(f"_newest.{c}").alias(c) for c in STATE_COLUMNS if c not in KEY))
    )


def latest_state(readings: DataFrame) -> DataFrame:
    """The latest Good value per asset and sensor (Uncertain and Bad readings never count).

    Grain in: one silver.telemetry row. Grain out: one row per (asset, sensor), STATE_COLUMNS;
    the newest by event time, ties broken by receive time, sequence and Kafka lineage.
    """
    return _newest_per_key(good_readings(readings).select(*STATE_COLUMNS))
