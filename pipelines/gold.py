"""Gold layer job: silver.telemetry to 1- and 5-minute aggregates and late data.

Each micro-batch, in this order (so a retry after a partial failure sees the same watermarks,
which come from gold.watermarks, the table written last):
1. gold.telemetry_1m / _5m: the open windows the batch touched, recomputed from silver (MERGE);
2. gold.late_data: Good readings whose window had closed (idempotent append);
3. gold.watermarks: the newest Good event time per (asset, sensor) (MERGE, only forward).
Every write carries Delta's (txnAppId, txnVersion) = (writer id, batch id), so a retried batch
changes nothing that already committed.

gold.twin_state is not written here: the hot path (`plantlake.pipelines.hot_path`) keeps it
within a second of Kafka, which a Spark micro-batch cannot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from plantlake.config import LakeSettings, Settings
from plantlake.contracts import (
    GOLD_LATE_DATA,
    GOLD_TELEMETRY_1M,
    GOLD_TELEMETRY_5M,
    GOLD_WATERMARKS,
    SILVER_TELEMETRY,
    TableRef,
)
from plantlake.pipelines.aggregates import (
    WINDOWS_MS,
    late_data_rows,
    mark_late,
    open_windows,
    recompute_windows,
    watermarks,
)
from plantlake.pipelines.delta_io import (
    append_once,
    append_unless_empty,
    idempotent_dml,
    read_delta,
    require_table,
    writer_id,
)
from plantlake.pipelines.twin_state import good_readings

WINDOW_TABLES: Mapping[str, TableRef] = {"1m": GOLD_TELEMETRY_1M, "5m": GOLD_TELEMETRY_5M}


@dataclass(frozen=True)
class GoldOptions:
    """Tunables of the gold job (plain values; Settings has no gold section yet)."""

    # How far behind a sensor's newest Good reading a window stays open. Covers OPC UA's
    # HistoryRead backfill, which lands after live values resumed; a replay after a longer
    # outage is not late at all, as the sensor's watermark stood still meanwhile.
    watermark_delay_ms: int = 15 * 60_000
    trigger: str = "10 seconds"


@dataclass(frozen=True)
class GoldPaths:
    silver: str
    watermarks: str
    late_data: str
    windows: Mapping[str, str]

    @classmethod
    def for_lake(cls, lake: LakeSettings) -> GoldPaths:
        return cls(
            silver=SILVER_TELEMETRY.path(lake),
            watermarks=GOLD_WATERMARKS.path(lake),
            late_data=GOLD_LATE_DATA.path(lake),
            windows={name: ref.path(lake) for name, ref in WINDOW_TABLES.items()},
        )


def _read_if_exists(session: SparkSession, path: str) -> DataFrame | None:
    return read_delta(session, path) if DeltaTable.isDeltaTable(session, path) else None


def merge_windows(
    source: DataFrame, path: str, *, app_id: str, batch_id: int, span_ms: tuple[int, int]
) -> None:
    """Replace the windows in `source` in an aggregate table (insert the new ones).

    `span_ms` = [lo, hi) bounds every window_start_ms in `source`; it is a predicate on the
    target alone, so Delta reads only the files whose windows can match, not the whole table.
    """
    session = source.sparkSession
    if not DeltaTable.isDeltaTable(session, path):
        append_once(source, path, app_id=app_id, batch_id=batch_id)
        return
    lo, hi = span_ms
    on = (
        f"t.window_start_ms >= {int(lo)} AND t.window_start_ms < {int(hi)} AND "
        "t.asset = s.asset AND t.sensor = s.sensor AND t.window_start_ms = s.window_start_ms"
    )
    with idempotent_dml(session, app_id=app_id, batch_id=batch_id):
        (
            DeltaTable.forPath(session, path).alias("t")
            .merge(source.alias("s"), on)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )  # fmt: skip


def merge_watermarks(readings: DataFrame, path: str, *, app_id: str, batch_id: int) -> None:
    """Move each sensor's watermark row forward to the newest Good event time in `readings`."""
    newest = (
        good_readings(readings)
        .groupBy("asset", "sensor")
        .agg(F.max("event_time_ms").alias("event_time_ms"))
    )
    session = readings.sparkSession
    if not DeltaTable.isDeltaTable(session, path):
        append_once(newest, path, app_id=app_id, batch_id=batch_id)
        return
    with idempotent_dml(session, app_id=app_id, batch_id=batch_id):
        (
            DeltaTable.forPath(session, path).alias("t")
            .merge(newest.alias("s"), "t.asset = s.asset AND t.sensor = s.sensor")
            .whenMatchedUpdate(condition="s.event_time_ms > t.event_time_ms",
                               set={"event_time_ms": "s.event_time_ms"})
            .whenNotMatchedInsertAll()
            .execute()
        )  # fmt: skip


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
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
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
    """Merge the windows the batch touched and append its late data; False for an empty batch."""
    session = readings.sparkSession
    bounds = readings.agg(
        F.min("event_time_ms").alias("lo"),
        F.max("event_time_ms").alias("hi"),
        F.max(F.unix_micros("silver_time")).alias("written_by"),
    ).first()
    if bounds is None or bounds.lo is None:
        return False
    if current is None:
        marks = session.createDataFrame([], "asset string, sensor string, watermark_ms long")
    else:
        marks = watermarks(current, delay_ms=options.watermark_delay_ms, now_ms=now_ms)
    widest = max(WINDOWS_MS.values())
    span = (bounds.lo - bounds.lo % widest, bounds.hi - bounds.hi % widest + widest)
    # Silver as of this batch: rows in the batch's time span, written no later than the batch.
    # Rows silver wrote since belong to later batches, which recompute their windows again.
    silver = (
        good_readings(read_delta(session, paths.silver))
        .where(
            (F.col("event_time_ms") >= span[0])
            & (F.col("event_time_ms") < span[1])
            & (F.unix_micros("silver_time") <= bounds.written_by)
        )
        .select("asset", "sensor", "quantity", "unit", "value", "quality", "event_time_ms")
        .join(readings.select("asset", "sensor").distinct(), ["asset", "sensor"], "left_semi")
        .persist()  # one scan of silver serves both window sizes
    )
    try:
        late = None
        for name, window_ms in WINDOWS_MS.items():
            marked = mark_late(readings, watermarks=marks, window_ms=window_ms)
            rows = late_data_rows(marked, gold_table=WINDOW_TABLES[name].name,
                                  batch_id=batch_id, arrival_ms=now_ms)  # fmt: skip
            late = rows if late is None else late.unionByName(rows)
            fresh = recompute_windows(silver, windows=open_windows(marked), window_ms=window_ms)
            merge_windows(fresh, paths.windows[name], app_id=app_id, batch_id=batch_id,
                          span_ms=span)  # fmt: skip
        append_unless_empty(late, paths.late_data, empty=late.isEmpty(), app_id=app_id,
                            batch_id=batch_id)  # fmt: skip
    finally:
        silver.unpersist()
    return True


def run(
    spark: SparkSession, settings: Settings, *, once: bool, options: GoldOptions | None = None
) -> StreamingQuery:
    """Start the gold query over silver.telemetry; `once` processes what is available and stops."""
    options = options or GoldOptions()
    paths = GoldPaths.for_lake(settings.lake)
    require_table(
        spark, SILVER_TELEMETRY, settings.lake, hint="Run `plantlake pipeline run silver` first."
    )
    checkpoint = settings.lake.checkpoint_path("gold")
    app_id = f"gold:{writer_id(spark, checkpoint)}"

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        process_batch(batch, batch_id, paths=paths, app_id=app_id, options=options)

    source = spark.readStream.format("delta").load(paths.silver)
    writer = source.writeStream.queryName("gold").option("checkpointLocation", checkpoint)
    writer = (
        writer.trigger(availableNow=True)
        if once
        else writer.trigger(processingTime=options.trigger)
    )
    return writer.foreachBatch(write_batch).start()
