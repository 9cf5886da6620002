"""Gold layer job: silver.telemetry to twin state with liveness, 1- and 5-minute aggregates, late data.

Each micro-batch, in this order (so a retry after a partial failure sees the same watermarks,
which come from gold.twin_state, the table written last):
1. gold.telemetry_1m / _5m: the open windows the batch touched, recomputed from silver (MERGE);
2. gold.late_data: Good readings whose window had closed (idempotent append);
3. gold.twin_state: the newer of table and batch per (asset, sensor), liveness recomputed for
   every row from bronze.lifecycle (MERGE, value columns only when the source is newer).
Every write carries Delta's (txnAppId, txnVersion) = (writer id, batch id), so a retried batch
changes nothing that already committed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from plantlake.config import LakeSettings, Settings
from plantlake.contracts import (
    BRONZE_LIFECYCLE,
    GOLD_LATE_DATA,
    GOLD_TELEMETRY_1M,
    GOLD_TELEMETRY_5M,
    GOLD_TWIN_STATE,
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
    idempotent_dml,
    read_delta,
    require_table,
    writer_id,
)
from plantlake.pipelines.twin_state import (
    DEFAULT_FRESHNESS_SLO_MS,
    DEFAULT_SLO_MS,
    LIFECYCLE_COLUMNS,
    LIVENESS_COLUMNS,
    STATE_COLUMNS,
    good_readings,
    latest_state,
    liveness,
    newer_than,
    newest_state,
)

WINDOW_TABLES: Mapping[str, TableRef] = {"1m": GOLD_TELEMETRY_1M, "5m": GOLD_TELEMETRY_5M}
_TICK = "_gold_tick"


@dataclass(frozen=True)
class GoldOptions:
    """Tunables of the gold job (plain values; Settings has no gold section yet)."""

    # How far behind a sensor's newest Good reading a window stays open. Covers OPC UA's
    # HistoryRead backfill, which lands after live values resumed; a replay after a longer
    # outage is not late at all, as the sensor's watermark stood still meanwhile.
    watermark_delay_ms: int = 15 * 60_000
    freshness_slo_ms: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_FRESHNESS_SLO_MS)
    )
    default_slo_ms: int = DEFAULT_SLO_MS
    trigger: str = "10 seconds"


@dataclass(frozen=True)
class GoldPaths:
    silver: str
    lifecycle: str
    twin_state: str
    late_data: str
    windows: Mapping[str, str]

    @classmethod
    def for_lake(cls, lake: LakeSettings) -> GoldPaths:
        return cls(
            silver=SILVER_TELEMETRY.path(lake),
            lifecycle=BRONZE_LIFECYCLE.path(lake),
            twin_state=GOLD_TWIN_STATE.path(lake),
            late_data=GOLD_LATE_DATA.path(lake),
            windows={name: ref.path(lake) for name, ref in WINDOW_TABLES.items()},
        )


def _read_if_exists(session: SparkSession, path: str) -> DataFrame | None:
    return read_delta(session, path) if DeltaTable.isDeltaTable(session, path) else None


def merge_windows(source: DataFrame, path: str, *, app_id: str, batch_id: int) -> None:
    """Replace the windows in `source` in an aggregate table (insert the new ones)."""
    session = source.sparkSession
    if not DeltaTable.isDeltaTable(session, path):
        append_once(source, path, app_id=app_id, batch_id=batch_id)
        return
    on = "t.asset = s.asset AND t.sensor = s.sensor AND t.window_start_ms = s.window_start_ms"
    with idempotent_dml(session, app_id=app_id, batch_id=batch_id):
        (
            DeltaTable.forPath(session, path).alias("t")
            .merge(source.alias("s"), on)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )  # fmt: skip


def merge_twin_state(source: DataFrame, path: str, *, app_id: str, batch_id: int) -> None:
    """Upsert twin state: values only from a newer source row, liveness always.

    `source` holds one row per (asset, sensor) (STATE_COLUMNS + LIVENESS_COLUMNS). The value
    columns are replaced only when the source row is newer by STATE_ORDER, so a late event never
    overwrites newer state; `status_since` stays as it was while the status does not change.
    """
    session = source.sparkSession
    if not DeltaTable.isDeltaTable(session, path):
        append_once(source, path, app_id=app_id, batch_id=batch_id)
        return
    keep_since = "CASE WHEN t.status = s.status THEN t.status_since ELSE s.status_since END"
    status = {c: f"s.{c}" for c in LIVENESS_COLUMNS} | {"status_since": keep_since}
    everything = {c: f"s.{c}" for c in STATE_COLUMNS} | status
    with idempotent_dml(session, app_id=app_id, batch_id=batch_id):
        (
            DeltaTable.forPath(session, path).alias("t")
            .merge(source.alias("s"), "t.asset = s.asset AND t.sensor = s.sensor")
            .whenMatchedUpdate(condition=newer_than("s", "t"), set=everything)
            .whenMatchedUpdate(set=status)
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
        current = _read_if_exists(session, paths.twin_state)
        _write_aggregates(readings, batch_id, current, paths=paths, app_id=app_id,
                          options=options, now_ms=now_ms)  # fmt: skip
        lifecycle = _read_if_exists(session, paths.lifecycle)
        if lifecycle is None:  # no lifecycle event yet: nothing has died
            lifecycle = session.createDataFrame([], LIFECYCLE_COLUMNS)
        incoming = latest_state(readings)
        state = incoming if current is None else newest_state(current, incoming)
        twin = liveness(
            state, lifecycle=lifecycle, now_ms=now_ms,
            freshness_slo_ms=options.freshness_slo_ms, default_slo_ms=options.default_slo_ms,
        )  # fmt: skip
        merge_twin_state(twin, paths.twin_state, app_id=app_id, batch_id=batch_id)
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
) -> None:
    session = readings.sparkSession
    bounds = readings.agg(
        F.min("event_time_ms").alias("lo"),
        F.max("event_time_ms").alias("hi"),
        F.max(F.unix_micros("silver_time")).alias("written_by"),
    ).first()
    if bounds is None or bounds.lo is None:
        return  # an empty batch (a liveness tick) touches no window
    if current is None:
        marks = session.createDataFrame([], "asset string, sensor string, watermark_ms long")
    else:
        marks = watermarks(current, delay_ms=options.watermark_delay_ms, now_ms=now_ms)
    widest = max(WINDOWS_MS.values())
    # Silver as of this batch: rows in the batch's time span, written no later than the batch.
    # Rows silver wrote since belong to later batches, which recompute their windows again.
    silver = (
        good_readings(read_delta(session, paths.silver))
        .where(
            (F.col("event_time_ms") >= bounds.lo - bounds.lo % widest)
            & (F.col("event_time_ms") < bounds.hi - bounds.hi % widest + widest)
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
            merge_windows(fresh, paths.windows[name], app_id=app_id, batch_id=batch_id)
        append_once(late, paths.late_data, app_id=app_id, batch_id=batch_id)
    finally:
        silver.unpersist()


def _with_ticks(spark: SparkSession, silver: DataFrame) -> DataFrame:
    """The silver stream plus one empty tick row per micro-batch.

    foreachBatch runs only when a source has new data; the tick makes every trigger a batch,
    so liveness is recomputed while the plant is silent: a dead sensor must not stay "alive"
    because nothing arrives any more.
    """
    ticks = spark.readStream.format("rate-micro-batch").option("rowsPerBatch", 1).load()
    nulls = [F.lit(None).cast(f.dataType).alias(f.name) for f in silver.schema.fields]
    return silver.withColumn(_TICK, F.lit(False)).unionByName(
        ticks.select(*nulls, F.lit(True).alias(_TICK))
    )


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
        readings = batch.where(~F.col(_TICK)).drop(_TICK)
        process_batch(readings, batch_id, paths=paths, app_id=app_id, options=options)

    source = _with_ticks(spark, spark.readStream.format("delta").load(paths.silver))
    writer = source.writeStream.queryName("gold").option("checkpointLocation", checkpoint)
    writer = (
        writer.trigger(availableNow=True)
        if once
        else writer.trigger(processingTime=options.trigger)
    )
    return writer.foreachBatch(write_batch).start()
