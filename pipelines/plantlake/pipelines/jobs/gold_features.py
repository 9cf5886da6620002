"""Gold feature job: silver.telemetry (+ silver.maintenance_events) to gold.features, incrementally.

Each micro-batch of silver rows names the assets it touched and the earliest bucket it changed;
those assets' features are recomputed from that bucket on, with 24 hours of silver before it as
the windows' history, by `features.asset_features` (the one feature code path), and MERGEd into
gold.features. A reading that arrives late therefore updates every row it falls into, and those
rows' `knowable_at` moves to its arrival. With `--once` the first run computes the whole history.

When a `champion` model exists, the job then scores the rows it just wrote (the streaming scoring
of the gold path; see plantlake.models.jobs.scoring), so features and scores move together.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from plantlake.adapters.checkpoints import start_exclusive
from plantlake.adapters.delta import (
    add_missing_columns,
    read_delta,
    require_table,
    table_exists,
    upsert,
    writer_id,
)
from plantlake.adapters.spark import first_row, scheduler_pool
from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import (
    EDGE_FEATURES_IN_GOLD,
    GOLD_FEATURES,
    SILVER_MAINTENANCE_EVENTS,
    SILVER_TELEMETRY,
)
from plantlake.pipelines.transforms.features import (
    FEATURE_COLUMNS,
    HORIZONS_MS,
    MAINTENANCE_KINDS,
    OUTPUT_COLUMNS,
    asset_features,
)
from plantlake.pipelines.transforms.twin_state import good_readings

# The columns of a reading the feature code takes (`feature_readings`), and of its input here.
READING_COLUMNS = (
    "asset", "sensor", "asset_class", "quantity", "value", "event_time_ms", "arrived_ms",
)  # fmt: skip
_INPUT = (*READING_COLUMNS, "emit_from_ms")
FEATURE_SCHEMA = ", ".join(
    [
        "asset string", "asset_class string", "feature_time_ms long", "knowable_at_ms long",
        "readings long", "feature_version string",
        *(f"{name} double" for name in FEATURE_COLUMNS),
    ]
)  # fmt: skip
# Everything a window needs before the first bucket it emits.
CONTEXT_MS = max(HORIZONS_MS.values())


def feature_readings(silver: DataFrame) -> DataFrame:
    """The silver columns features use. Grain: one Good silver reading that a feature uses: a
    sensor's own reading, or one of the edge's window features in EDGE_FEATURES_IN_GOLD (the
    others, such as every window's peak, would only cost the pandas step time)."""
    feature = F.substring_index("sensor", ".", -1)
    used = ~F.col("sensor").contains(".") | feature.isin(*EDGE_FEATURES_IN_GOLD)
    return good_readings(silver).where(used).select(
        "asset", "sensor", "asset_class", "quantity", "value", "event_time_ms",
        F.unix_millis("bronze_ingest_time").alias("arrived_ms"),
    )  # fmt: skip


def compute_features(readings: DataFrame, maintenance: DataFrame, *, step_ms: int) -> DataFrame:
    """gold.features rows per asset from its readings and maintenance events.

    Grain in: `readings` one Good reading (feature_readings columns plus `emit_from_ms`, the first
    grid time to emit for its asset, null for all); `maintenance` one silver.maintenance_events row.
    Grain out: one row per (asset, feature_time_ms), with feature_time and knowable_at timestamps.
    """

    def per_asset(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
        if rows.empty:
            return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
        done = events[events["event"].isin(MAINTENANCE_KINDS)]["event_time_ms"].to_numpy()
        emit_from = rows["emit_from_ms"].dropna()
        return asset_features(
            rows,
            maintenance_ms=done.astype(np.int64),
            step_ms=step_ms,
            emit_from_ms=int(emit_from.min()) if len(emit_from) else None,
        )

    features = (
        readings.select(*_INPUT).groupBy("asset")
        .cogroup(maintenance.select("asset", "event", "event_time_ms").groupBy("asset"))
        .applyInPandas(per_asset, schema=FEATURE_SCHEMA)
    )  # fmt: skip
    return features.select(
        "asset", "asset_class",
        F.timestamp_millis("feature_time_ms").alias("feature_time"), "feature_time_ms",
        F.timestamp_millis("knowable_at_ms").alias("knowable_at"), "knowable_at_ms",
        "readings", "feature_version", *FEATURE_COLUMNS,
    )  # fmt: skip


def touched(batch: DataFrame, *, step_ms: int) -> DataFrame:
    """Per asset, the first grid time a batch of silver rows changes. Grain: one row per asset."""
    return (
        good_readings(batch)
        .groupBy("asset")
        .agg(((F.min("event_time_ms") / step_ms).cast("long") * step_ms + step_ms).alias("emit_from_ms"))
    )  # fmt: skip


def merge_features(features: DataFrame, path: str, *, app_id: str, batch_id: int) -> None:
    """Upsert feature rows on (asset, feature_time_ms); a retried batch changes nothing. A table
    from an earlier feature version first gains the columns it lacks (null in its old rows)."""
    session = features.sparkSession
    if table_exists(session, path):
        add_missing_columns(session, path, GOLD_FEATURES.columns)
    upsert(features, path, on=GOLD_FEATURES.merge_on(), app_id=app_id, batch_id=batch_id)


def _maintenance(session: SparkSession, lake: LakeSettings) -> DataFrame:
    path = SILVER_MAINTENANCE_EVENTS.path(lake)
    if table_exists(session, path):
        return read_delta(session, path)
    return session.createDataFrame([], "asset string, event string, event_time_ms long")


def process_batch(
    batch: DataFrame, batch_id: int, *, settings: Settings, app_id: str, step_ms: int
) -> DataFrame | None:
    """Recompute and MERGE the features one micro-batch of silver rows changed; returns them."""
    session = batch.sparkSession
    starts = touched(batch, step_ms=step_ms).collect()
    if not starts:
        return None
    first = {row.asset: row.emit_from_ms for row in starts}
    written_by = first_row(batch.agg(F.max(F.unix_micros("silver_time"))))[0]
    emit = session.createDataFrame(list(first.items()), "asset string, emit_from_ms long")
    silver = read_delta(session, SILVER_TELEMETRY.path(settings.lake))
    context = (
        feature_readings(
            silver.where(
                (F.col("event_time_ms") >= min(first.values()) - CONTEXT_MS - step_ms)
                & (F.unix_micros("silver_time") <= written_by)
            )
        )
        .join(emit, "asset")
        .where(F.col("event_time_ms") >= F.col("emit_from_ms") - CONTEXT_MS - step_ms)
    )
    features = compute_features(context, _maintenance(session, settings.lake), step_ms=step_ms)
    features = features.withColumn("computed_at", F.current_timestamp()).persist()
    merge_features(features, GOLD_FEATURES.path(settings.lake), app_id=app_id, batch_id=batch_id)
    return features


def run(
    spark: SparkSession,
    settings: Settings,
    *,
    once: bool,
    on_features: Callable[[DataFrame, int], None] | None = None,
) -> StreamingQuery:
    """Start the feature query over silver.telemetry; `once` processes what is available and stops.

    `on_features(rows, batch_id)` is called with each batch's new and updated feature rows after
    they are written: the app layer passes the streaming scorer here (`pipeline run features
    --score`, `pipeline up`); without it the job only computes features.
    """
    lake = settings.lake
    require_table(spark, SILVER_TELEMETRY, lake, hint="Run `plantlake pipeline run silver` first.")
    step_ms = settings.models.feature_step_minutes * 60_000
    checkpoint = lake.checkpoint_path("features")
    app_id = f"features:{writer_id(spark, checkpoint)}"

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        # Read the micro-batch once: process_batch scans it for touched assets and its end.
        batch = batch.persist()
        try:
            features = process_batch(
                batch, batch_id, settings=settings, app_id=app_id, step_ms=step_ms
            )
        finally:
            batch.unpersist()
        if features is None:
            return
        try:
            if on_features is not None:
                on_features(features, batch_id)
        finally:
            features.unpersist()
        print(f"features: batch {batch_id} done in {time.monotonic() - started:.1f}s", flush=True)

    source = spark.readStream.format("delta").load(SILVER_TELEMETRY.path(lake))
    every = None if once else settings.pipeline.features_trigger
    with scheduler_pool(spark, "features"):
        return start_exclusive(source, write_batch, settings, checkpoint, job="features",
                               every=every)  # fmt: skip
