"""Event-time window aggregates per asset and sensor, their watermark and late data (gold layer).

How the gold job uses these: each micro-batch marks its Good rows against a per-(asset, sensor)
watermark, records the rows whose window has closed in gold.late_data, and recomputes every
still-open window a row touched from all of silver's rows in that window, replacing the gold row
(MERGE). A window's aggregate is thus a function of the set of rows in it, never of the order or
the batches they arrived in: a replay of buffered edge data lands in the same windows with the
same numbers as if there had been no outage, and a row delivered twice cannot count twice.

p95 is Spark's exact `percentile` (linear interpolation between the closest ranks, as numpy's
default): a recomputed window holds at most a few thousand values, so exactness is cheap, and it
makes the result deterministic; `approx_percentile` is a sketch whose answer depends on the
accuracy setting and could differ between a replay and the original.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from plantlake.pipelines.twin_state import good_readings

WINDOWS_MS: Mapping[str, int] = {"1m": 60_000, "5m": 300_000}
WINDOW_KEY = ("asset", "sensor", "window_start_ms")
AGGREGATE_COLUMNS = (
    "asset", "sensor", "window_start", "window_end", "window_start_ms", "quantity", "unit",
    "mean", "std", "min", "max", "count", "p95",
)  # fmt: skip
LATE_DATA_COLUMNS = (
    "gold_table", "asset", "sensor", "event_time", "event_time_ms", "sequence", "value",
    "window_start", "window_end", "watermark", "lateness_ms", "batch_id", "arrival_time",
    "kafka_topic", "kafka_partition", "kafka_offset",
)  # fmt: skip
P95 = 0.95


def watermarks(state: DataFrame, *, delay_ms: int, now_ms: int) -> DataFrame:
    """The watermark per (asset, sensor): its latest Good event time, capped at now, minus the delay.

    Per sensor rather than per query: one edge node replaying an hour of buffered data after its
    outage is behind only its own watermark (which stood still while it was cut off), not behind
    the plant's. The cap at `now_ms` keeps a device clock running ahead from closing windows early.

    Grain in: one row per (asset, sensor) with `event_time_ms` (gold.watermarks before the batch).
    Grain out: one row per (asset, sensor): asset, sensor, watermark_ms.
    """
    latest = F.least(F.col("event_time_ms"), F.lit(now_ms))
    return state.select("asset", "sensor", (latest - delay_ms).alias("watermark_ms"))


def mark_late(readings: DataFrame, *, watermarks: DataFrame, window_ms: int) -> DataFrame:
    """Good readings with their window and whether that window had closed when they arrived.

    A window is closed once its end is at or before the sensor's watermark (as in Spark's own
    windowed aggregation); its rows are late. A sensor without a watermark yet has none closed.

    Grain in: one silver.telemetry row. Grain out: one Good reading, plus window_start_ms,
    window_start, window_end, watermark_ms and is_late.
    """
    start = F.col("event_time_ms") - F.pmod(F.col("event_time_ms"), F.lit(window_ms))
    return (
        good_readings(readings)
        .withColumn("window_start_ms", start)
        .withColumn("window_start", F.timestamp_millis(start))
        .withColumn("window_end", F.timestamp_millis(start + window_ms))
        .join(F.broadcast(watermarks), ["asset", "sensor"], "left")
        .withColumn(
            "is_late",
            F.coalesce(F.col("window_start_ms") + window_ms <= F.col("watermark_ms"), F.lit(False)),
        )
    )


def open_windows(marked: DataFrame) -> DataFrame:
    """The still-open windows a batch touched. Grain in: mark_late rows; out: one WINDOW_KEY."""
    return marked.where(~F.col("is_late")).select(*WINDOW_KEY).distinct()


def window_aggregates(readings: DataFrame, *, window_ms: int) -> DataFrame:
    """Tumbling event-time windows of `window_ms` over Good readings: mean, std, min, max, count, p95.

    std is the sample standard deviation (null for a single value); p95 the exact percentile
    with linear interpolation. `window_start_ms` is kept as the MERGE key (a long compares
    exactly). Grain in: one silver.telemetry row. Grain out: one row per (asset, sensor,
    window), AGGREGATE_COLUMNS.
    """
    start = F.col("event_time_ms") - F.pmod(F.col("event_time_ms"), F.lit(window_ms))
    value = F.col("value")
    grouped = (
        good_readings(readings)
        .withColumn("window_start_ms", start)
        .groupBy(*WINDOW_KEY)
        .agg(
            # One sensor is one quantity; max() only makes a remount's change deterministic.
            F.max("quantity").alias("quantity"),
            F.max("unit").alias("unit"),
            F.array_sort(F.collect_list(value)).alias("_sorted"),
            F.percentile(value, F.lit(P95)).alias("p95"),
        )
    )
    # Sums run over the sorted values, so mean and std are bit-identical whatever order, batch
    # or file layout the rows came in (Spark's avg adds partial sums in partition order).
    values = F.col("_sorted")
    n = F.size(values)
    mean = F.aggregate(values, F.lit(0.0), lambda acc, x: acc + x) / n
    squares = F.aggregate(values, F.lit(0.0), lambda acc, x: acc + (x - mean) * (x - mean))
    return grouped.select(
        *WINDOW_KEY,
        F.timestamp_millis(F.col("window_start_ms")).alias("window_start"),
        F.timestamp_millis(F.col("window_start_ms") + window_ms).alias("window_end"),
        "quantity",
        "unit",
        mean.alias("mean"),
        F.when(n > 1, F.sqrt(squares / (n - 1))).alias("std"),
        F.element_at(values, 1).alias("min"),
        F.element_at(values, -1).alias("max"),
        n.cast("long").alias("count"),
        "p95",
    ).select(*AGGREGATE_COLUMNS)


def recompute_windows(readings: DataFrame, *, windows: DataFrame, window_ms: int) -> DataFrame:
    """The aggregates of the given windows from all their readings (for a MERGE that replaces).

    Grain in: readings, silver.telemetry rows (pruned or not); windows, one WINDOW_KEY each.
    Grain out: one row per window in `windows` that has Good readings, AGGREGATE_COLUMNS.
    """
    start = F.col("event_time_ms") - F.pmod(F.col("event_time_ms"), F.lit(window_ms))
    in_windows = readings.withColumn("window_start_ms", start).join(
        windows, list(WINDOW_KEY), "left_semi"
    )
    return window_aggregates(in_windows.drop("window_start_ms"), window_ms=window_ms)


def late_data_rows(
    marked: DataFrame, *, gold_table: str, batch_id: int, arrival_ms: int
) -> DataFrame:
    """Rows of gold.late_data: readings that arrived after their window in `gold_table` closed.

    `lateness_ms` is how far behind the sensor's watermark the reading's event time was; the
    reading itself stays in silver.telemetry, so a backfill can still recompute the window.

    Grain in: mark_late rows. Grain out: one late reading for one gold table, LATE_DATA_COLUMNS.
    """
    return marked.where(F.col("is_late")).select(
        F.lit(gold_table).alias("gold_table"),
        "asset", "sensor", "event_time", "event_time_ms", "sequence", "value",
        "window_start", "window_end",
        F.timestamp_millis(F.col("watermark_ms")).alias("watermark"),
        (F.col("watermark_ms") - F.col("event_time_ms")).alias("lateness_ms"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        F.timestamp_millis(F.lit(arrival_ms)).alias("arrival_time"),
        "kafka_topic", "kafka_partition", "kafka_offset",
    )  # fmt: skip
