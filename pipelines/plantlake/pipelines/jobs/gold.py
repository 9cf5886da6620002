"""Gold layer job: silver.telemetry to 1- and 5-minute aggregates and late data.

Each micro-batch, in this order (so a retry after a partial failure sees the same watermarks,
which come from gold.watermarks, the table written last):
1. gold.telemetry_1m / _5m: the open windows the batch touched, their values (from
   gold.open_windows) plus the batch's, aggregated again (MERGE);
2. gold.late_data: Good readings whose window had closed (idempotent append);
3. gold.open_windows: the windows still open with their values (overwrite; about 15 minutes
   of values per sensor);
4. gold.watermarks: the newest Good event time per (asset, sensor) (MERGE, only forward).
Every write carries Delta's (txnAppId, txnVersion) = (writer id, batch id), so a retried batch
changes nothing that already committed.

gold.twin_state is not written here: the hot path (`plantlake.pipelines.jobs.hot_path`) keeps it
within a second of Kafka, which a Spark micro-batch cannot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from plantlake.adapters.checkpoints import start_exclusive
from plantlake.adapters.delta import (
    append_unless_empty,
    overwrite_once,
    read_delta,
    require_table,
    table_exists,
    upsert,
    writer_id,
)
from plantlake.adapters.spark import first_row
from plantlake.core import clock
from plantlake.core.config import LakeSettings, PipelineSettings, Settings
from plantlake.core.contracts import (
    GOLD_LATE_DATA,
    GOLD_OPEN_WINDOWS,
    GOLD_TELEMETRY_1M,
    GOLD_TELEMETRY_5M,
    GOLD_WATERMARKS,
    SILVER_TELEMETRY,
    TableRef,
)
from plantlake.pipelines.transforms.aggregates import (
    WINDOW_KEY,
    WINDOWS_MS,
    add_values,
    aggregates_of_values,
    late_data_rows,
    mark_late,
    still_open,
    watermarks,
    window_values,
)
from plantlake.pipelines.transforms.twin_state import good_readings

# A silver row's identity across tables: the Kafka record it came from.
LINEAGE = ("kafka_topic", "kafka_partition", "kafka_offset")

WINDOW_TABLES: Mapping[str, TableRef] = {"1m": GOLD_TELEMETRY_1M, "5m": GOLD_TELEMETRY_5M}


@dataclass(frozen=True)
class GoldOptions:
    """What a gold micro-batch needs of the settings (`pipeline.gold_*`)."""

    # How far behind a sensor's newest Good reading a window stays open. Covers OPC UA's
    # HistoryRead backfill, which lands after live values resumed; a replay after a longer
    # outage is not late at all, as the sensor's watermark stood still meanwhile.
    watermark_delay_ms: int

    @classmethod
    def of(cls, pipeline: PipelineSettings) -> GoldOptions:
        return cls(watermark_delay_ms=int(pipeline.gold_watermark_delay_minutes * 60_000))


@dataclass(frozen=True)
class GoldPaths:
    silver: str
    watermarks: str
    open_windows: str
    late_data: str
    windows: Mapping[str, str]

    @classmethod
    def for_lake(cls, lake: LakeSettings) -> GoldPaths:
        return cls(
            silver=SILVER_TELEMETRY.path(lake),
            watermarks=GOLD_WATERMARKS.path(lake),
            open_windows=GOLD_OPEN_WINDOWS.path(lake),
            late_data=GOLD_LATE_DATA.path(lake),
            windows={name: ref.path(lake) for name, ref in WINDOW_TABLES.items()},
        )


def _read_if_exists(session: SparkSession, path: str) -> DataFrame | None:
    return read_delta(session, path) if table_exists(session, path) else None


def merge_windows(
    source: DataFrame, path: str, *, app_id: str, batch_id: int, span_ms: tuple[int, int]
) -> None:
    """Replace the windows in `source` in an aggregate table (insert the new ones).

    `span_ms` = [lo, hi) bounds every window_start_ms in `source`; it is a predicate on the
    target alone, so Delta reads only the files whose windows can match, not the whole table.
    """
    lo, hi = span_ms
    # Both window tables have one key (GOLD_TELEMETRY_5M's is the same).
    span = f"t.window_start_ms >= {int(lo)} AND t.window_start_ms < {int(hi)}"
    on = f"{span} AND {GOLD_TELEMETRY_1M.merge_on()}"
    upsert(source, path, on=on, app_id=app_id, batch_id=batch_id)


def merge_watermarks(readings: DataFrame, path: str, *, app_id: str, batch_id: int) -> None:
    """Move each sensor's watermark row forward to the newest Good event time in `readings`."""
    newest = (
        good_readings(readings)
        .groupBy("asset", "sensor")
        .agg(F.max("event_time_ms").alias("event_time_ms"))
    )
    upsert(newest, path, on=GOLD_WATERMARKS.merge_on(), app_id=app_id, batch_id=batch_id,
           when_matched="s.event_time_ms > t.event_time_ms",
           update={"event_time_ms": "s.event_time_ms"})  # fmt: skip


def process_batch(
    readings: DataFrame,
    batch_id: int,
    *,
    paths: GoldPaths,
    app_id: str,
    options: GoldOptions,
    now_ms: int | None = None,
) -> None:
    """Write one micro-batch of silver.telemetry rows to every gold table (see the module doc)."""
    session = readings.sparkSession
    now_ms = clock.now_ms() if now_ms is None else now_ms
    readings = readings.persist()
    try:
        current = _read_if_exists(session, paths.watermarks)
        if _write_aggregates(readings, batch_id, current, paths=paths, app_id=app_id,
                             options=options, now_ms=now_ms):  # fmt: skip
            merge_watermarks(readings, paths.watermarks, app_id=app_id, batch_id=batch_id)
    finally:
        readings.unpersist()


def _write_aggregates(
    readings: DataFrame,
    batch_id: int,
    current: DataFrame | None,
    *,
    paths: GoldPaths,
    app_id: str,
    options: GoldOptions,
    now_ms: int,
) -> bool:
    """Add the batch to its open windows, merge their aggregates, append its late data and carry
    the windows still open forward; False for an empty batch."""
    session = readings.sparkSession
    lo_ms = first_row(readings.agg(F.min("event_time_ms")))[0]
    if lo_ms is None:
        return False
    if current is None:
        marks = session.createDataFrame([], "asset string, sensor string, watermark_ms long")
    else:
        marks = watermarks(current, delay_ms=options.watermark_delay_ms, now_ms=now_ms)
    # Materialized: gold.open_windows is read here and overwritten at the end of the batch.
    since_ms = min(lo_ms, now_ms) - options.watermark_delay_ms
    held = _held_windows(readings, paths, marks, since_ms=since_ms).localCheckpoint()
    late: DataFrame | None = None
    arriving: DataFrame | None = None
    for name, window_ms in WINDOWS_MS.items():
        marked = mark_late(readings, watermarks=marks, window_ms=window_ms)
        rows = late_data_rows(marked, gold_table=WINDOW_TABLES[name].name,
                              batch_id=batch_id, arrival_ms=now_ms)  # fmt: skip
        late = rows if late is None else late.unionByName(rows)
        values = window_values(marked.where(~F.col("is_late")), window_ms=window_ms)
        arriving = values if arriving is None else arriving.unionByName(values)
    if late is None or arriving is None:  # WINDOWS_MS names at least one window
        raise AssertionError("gold has no window lengths")
    touched = add_values(held, arriving).localCheckpoint()
    lo, hi = first_row(touched.agg(F.min("window_start_ms"), F.max("window_start_ms")))
    for name, window_ms in WINDOWS_MS.items():
        if lo is None:  # every reading was late
            break
        fresh = aggregates_of_values(
            touched.where(F.col("window_ms") == window_ms), window_ms=window_ms
        )
        merge_windows(fresh, paths.windows[name], app_id=app_id, batch_id=batch_id,
                      span_ms=(lo, hi + 1))  # fmt: skip
    append_unless_empty(late, paths.late_data, empty=late.isEmpty(), app_id=app_id,
                        batch_id=batch_id)  # fmt: skip
    # Written after the window MERGEs: a batch retried before this commit finds the windows as
    # they were and recomputes the same rows (which the MERGEs then skip as committed).
    key = ["window_ms", *WINDOW_KEY]
    carried = held.join(touched.select(*key), key, "left_anti").unionByName(touched)
    overwrite_once(still_open(carried, watermarks=marks), paths.open_windows, app_id=app_id,
                   batch_id=batch_id)  # fmt: skip
    return True


def _held_windows(
    readings: DataFrame, paths: GoldPaths, marks: DataFrame, *, since_ms: int
) -> DataFrame:
    """gold.open_windows as the batch finds it.

    The first batch that finds no table (a new lake, or one gold wrote before the table
    existed) seeds it from silver: the windows that are still open, from silver's rows since
    `since_ms` written before this batch's, without the batch's own (silver holds those already;
    rows silver wrote since belong to later batches, which add them themselves).
    """
    session = readings.sparkSession
    if table_exists(session, paths.open_windows):
        return read_delta(session, paths.open_windows)
    written_by = first_row(readings.agg(F.max(F.unix_micros("silver_time"))))[0]
    earlier = (
        read_delta(session, paths.silver)
        .where(
            (F.col("event_time_ms") >= since_ms - max(WINDOWS_MS.values()))
            & (F.unix_micros("silver_time") <= written_by)
        )
        .join(readings.select(*LINEAGE), list(LINEAGE), "left_anti")
    )
    seeded = reduce(
        DataFrame.unionByName, (window_values(earlier, window_ms=w) for w in WINDOWS_MS.values())
    )
    return still_open(seeded, watermarks=marks)


def run(
    spark: SparkSession, settings: Settings, *, once: bool, options: GoldOptions | None = None
) -> StreamingQuery:
    """Start the gold query over silver.telemetry; `once` processes what is available and stops."""
    options = options or GoldOptions.of(settings.pipeline)
    paths = GoldPaths.for_lake(settings.lake)
    require_table(
        spark, SILVER_TELEMETRY, settings.lake, hint="Run `plantlake pipeline run silver` first."
    )
    checkpoint = settings.lake.checkpoint_path("gold")
    app_id = f"gold:{writer_id(spark, checkpoint)}"

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        process_batch(batch, batch_id, paths=paths, app_id=app_id, options=options)

    source = spark.readStream.format("delta").load(paths.silver)
    every = None if once else settings.pipeline.gold_trigger
    return start_exclusive(source, write_batch, settings, checkpoint, job="gold", every=every)
