"""Event-time window aggregates per asset and sensor, their watermark and late data (gold layer).

How the gold job uses these: each micro-batch marks its Good rows against a per-(asset, sensor)
watermark and records the rows whose window has closed in gold.late_data. Every still-open window
keeps its values, sorted, in gold.open_windows; a batch adds its own values to the windows it
touched (`add_values`) and replaces their gold rows (MERGE) with statistics computed from the
whole sorted array. A window's aggregate is thus a function of the multiset of values in it,
never of the order or the batches they arrived in: a replay of buffered edge data lands in the
same windows with the same numbers as if there had been no outage, and silver's dedup keeps a
reading delivered twice from counting twice. Once its sensor's watermark passes a window's end,
the window is closed and its values leave gold.open_windows.

Carrying the values rather than re-reading silver makes each batch cost its own size: before,
every batch re-read up to five minutes of silver (the widest window) for the windows it touched.

p95 is Spark's exact `percentile` (linear interpolation between the closest ranks, as numpy's
default), computed over the sorted values: exactness is cheap at a few thousand values per
window, and it makes the result deterministic; `approx_percentile` is a sketch whose answer
depends on the accuracy setting and could differ between a replay and the original.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from plantlake.core.contracts import GOLD_LATE_DATA, GOLD_OPEN_WINDOWS, GOLD_TELEMETRY_1M
from plantlake.pipelines.transforms.twin_state import good_readings

WINDOWS_MS: Mapping[str, int] = {"1m": 60_000, "5m": 300_000}
WINDOW_KEY = ("asset", "sensor", "window_start_ms")
# The columns of the window tables, gold.open_windows (the sorted values of each window still
# open, per window size) and gold.late_data, as the lake contract states them.
AGGREGATE_COLUMNS = GOLD_TELEMETRY_1M.column_names
OPEN_WINDOW_COLUMNS = GOLD_OPEN_WINDOWS.column_names
LATE_DATA_COLUMNS = GOLD_LATE_DATA.column_names
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


def still_open(open_windows: DataFrame, *, watermarks: DataFrame) -> DataFrame:
    """The windows of `open_windows` that have not closed under `watermarks` (see mark_late).

    Grain in and out: one row of gold.open_windows (OPEN_WINDOW_COLUMNS).
    """
    end = F.col("window_start_ms") + F.col("window_ms")
    return (
        open_windows.join(F.broadcast(watermarks), ["asset", "sensor"], "left")
        .where(F.col("watermark_ms").isNull() | (end > F.col("watermark_ms")))
        .select(*OPEN_WINDOW_COLUMNS)
    )


def window_values(readings: DataFrame, *, window_ms: int) -> DataFrame:
    """The sorted values of each tumbling event-time window of `window_ms` over Good readings.

    Grain in: one silver.telemetry row (or mark_late row). Grain out: one row per (asset,
    sensor, window): OPEN_WINDOW_COLUMNS, `values` sorted ascending.
    """
    start = F.col("event_time_ms") - F.pmod(F.col("event_time_ms"), F.lit(window_ms))
    return (
        good_readings(readings)
        .withColumn("window_start_ms", start)
        .groupBy(*WINDOW_KEY)
        .agg(
            # One sensor is one quantity; max() only makes a remount's change deterministic.
            F.max("quantity").alias("quantity"),
            F.max("unit").alias("unit"),
            F.array_sort(F.collect_list("value")).alias("values"),
        )
        .select(F.lit(window_ms).cast("long").alias("window_ms"), *OPEN_WINDOW_COLUMNS[1:])
    )


def _percentile_of_sorted(values: Column, n: Column, p: float) -> Column:
    """Spark's exact `percentile` (linear interpolation between the closest ranks) over a sorted
    array, term for term as Spark computes it, so both give bit-identical results."""
    position = (n - 1).cast("double") * F.lit(p)
    lower, higher = F.floor(position), F.ceil(position)
    low = F.element_at(values, (lower + 1).cast("int"))
    high = F.element_at(values, (higher + 1).cast("int"))
    interpolated = (higher - position) * low + (position - lower) * high
    return F.when((lower == higher) | (low == high), low).otherwise(interpolated)


def aggregates_of_values(windows: DataFrame, *, window_ms: int) -> DataFrame:
    """mean, std, min, max, count and p95 of each window from its sorted `values`.

    std is the sample standard deviation (null for a single value); p95 the exact percentile
    with linear interpolation. Sums run over the sorted values, so mean and std are
    bit-identical whatever order, batch or file layout the rows came in (Spark's avg adds
    partial sums in partition order). Grain in: one window, OPEN_WINDOW_COLUMNS. Grain out: one
    window, AGGREGATE_COLUMNS.
    """
    values = F.col("values")
    n = F.size(values)
    total = F.aggregate(values, F.lit(0.0), lambda acc, x: acc + x)
    # The mean is a column of its own: inside the lambda below, an expression would be
    # evaluated again for every element (quadratic in the window's size).
    with_mean = windows.withColumn("_mean", total / n)
    mean = F.col("_mean")
    squares = F.aggregate(values, F.lit(0.0), lambda acc, x: acc + (x - mean) * (x - mean))
    return with_mean.select(
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
        _percentile_of_sorted(values, n, P95).alias("p95"),
    ).select(*AGGREGATE_COLUMNS)


def window_aggregates(readings: DataFrame, *, window_ms: int) -> DataFrame:
    """Tumbling event-time windows of `window_ms` over Good readings: mean, std, min, max, count, p95.

    The one-shot computation over all of a window's rows; the gold job reaches the same numbers
    incrementally (`add_values`). Grain in: one silver.telemetry row. Grain out: one row per
    (asset, sensor, window), AGGREGATE_COLUMNS.
    """
    return aggregates_of_values(window_values(readings, window_ms=window_ms), window_ms=window_ms)


def add_values(open_windows: DataFrame, arriving: DataFrame) -> DataFrame:
    """Each window in `arriving` with the values it already held in `open_windows` added.

    Both sides are OPEN_WINDOW_COLUMNS with sorted `values`; the result's values are the sorted
    union (a multiset: a value seen twice counts twice, as silver keeps distinct readings only).
    Grain in and out: one row per (window_ms, asset, sensor, window_start_ms) of `arriving`.
    """
    key = ["window_ms", *WINDOW_KEY]
    held = open_windows.select(*key, F.col("values").alias("_held"))
    merged = F.array_sort(F.concat(F.coalesce("_held", F.array().cast("array<double>")), "values"))
    return (
        arriving.join(held, key, "left").withColumn("values", merged).select(*OPEN_WINDOW_COLUMNS)
    )


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
