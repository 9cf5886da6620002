"""The cold path: silver and the gold aggregates in one streaming query over bronze's readings
(bronze.telemetry and the edge's window features in bronze.edge_features).

Each micro-batch is routed by silver (dedup, registry, units, every rule, quarantine,
dq_metrics); then the silver rows of this batch, read back from silver.telemetry by their Kafka
lineage, go through gold's aggregates, late data and watermarks. Reading them back rather than
passing them on makes a retried batch whole: silver skips its append (already committed) and
drops the keys it has seen, but the rows are in the table, so gold still gets them.

Then planners' new quarantine decisions are applied (`review_apply`, as the silver job does,
and once when the query starts), and the readings they release go through gold too: under the
Delta transaction identity (writer, reviews table, reviews version) rather than the batch id, so
a retried application hands gold the same rows and gold skips what it wrote. A released
reading whose window is still open is aggregated; one whose window closed lands in
gold.late_data, with the reviews version as its batch_id.

Then the reconciliation check compares the batch's newest kept row per sensor of the telemetry
topic (the one the hot path reads) with the hot path's gold.twin_state and writes its verdict to silver.dq_metrics (rule twin_reconciliation).

One query instead of two chained ones (silver 10 s, then gold 10 s on silver's output) removes a
trigger and a Delta source from the path, and runs on a 30-60 s trigger (`pipeline.cold_trigger`)
that amortizes each batch's fixed cost. The twin is not here: the hot path keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from plantlake.adapters.checkpoints import start_exclusive
from plantlake.adapters.delta import append_once, read_delta, table_exists, writer_id
from plantlake.adapters.spark import first_row, scheduler_pool
from plantlake.core.config import Settings
from plantlake.core.contracts import (
    GOLD_TWIN_STATE,
    SILVER_DQ_METRICS,
    SILVER_TELEMETRY,
)
from plantlake.core.topics import topic
from plantlake.pipelines.jobs import gold, silver
from plantlake.pipelines.jobs.gold import LINEAGE
from plantlake.pipelines.jobs.reconciliation import RULE, reconcile, reconciliation_metric
from plantlake.pipelines.jobs.review_apply import Released, apply_at_start
from plantlake.pipelines.transforms.expectations import Rule


def silver_rows_of(batch: DataFrame, silver_path: str) -> DataFrame:
    """The silver.telemetry rows that came from `batch` (bronze rows), by their Kafka lineage.

    Grain in: one bronze.telemetry row; out: one silver.telemetry row. Reads only silver's rows
    in the batch's event-time span (Delta skips the other files by their min/max).
    """
    bounds = batch.agg(F.min("event_time_ms").alias("lo"), F.max("event_time_ms").alias("hi"))
    lo, hi = first_row(bounds)
    session = batch.sparkSession
    if lo is None:
        return session.createDataFrame([], read_delta(session, silver_path).schema)
    return (
        read_delta(session, silver_path)
        .where(F.col("event_time_ms").between(lo, hi))
        .join(batch.select(*LINEAGE), list(LINEAGE), "left_semi")
    )


def run(
    spark: SparkSession,
    settings: Settings,
    *,
    once: bool,
    rules: Sequence[Rule] | None = None,
    options: gold.GoldOptions | None = None,
) -> StreamingQuery:
    """Start the cold path over bronze.telemetry and bronze.edge_features; `once` processes what is available and stops.

    Raises what silver's and gold's set-up raise (missing bronze or reference tables, bad rules);
    a failing `fail` rule stops the query with ExpectationFailed's message.
    """
    lake = settings.lake
    checkpoint = lake.checkpoint_path("cold")
    route = silver.batch_writer(spark, lake, checkpoint=checkpoint, rules=rules)
    options = options or gold.GoldOptions.of(settings.pipeline)
    paths = gold.GoldPaths.for_lake(lake)
    gold_app = f"gold:{writer_id(spark, checkpoint)}"
    silver_path = SILVER_TELEMETRY.path(lake)
    # The hot path keeps the twin from the telemetry topic alone: window features have no twin.
    twin_topic = topic("telemetry").name(settings.kafka.topic_prefix)

    twin_path = GOLD_TWIN_STATE.path(lake)
    metrics_path = SILVER_DQ_METRICS.path(lake)

    def released_to_gold(released: Released) -> None:
        gold.process_batch(released.rows, released.txn_version, paths=paths,
                           app_id=f"{gold_app}:{released.txn_app}", options=options)  # fmt: skip

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        batch = batch.persist()
        kept = None
        try:
            route.route(batch, batch_id)
            kept = silver_rows_of(batch, silver_path).persist()
            gold.process_batch(kept, batch_id, paths=paths, app_id=gold_app, options=options)
            route.reviews.apply(label=f"cold batch {batch_id}", on_released=released_to_gold)
            twin = read_delta(spark, twin_path) if table_exists(spark, twin_path) else None
            in_twin = kept.where(F.col("kafka_topic") == twin_topic)
            metric = reconciliation_metric(reconcile(in_twin, twin), batch_id=batch_id)
            row = spark.createDataFrame([metric], silver.DQ_METRICS_SCHEMA)
            append_once(row.withColumn("batch_time", F.current_timestamp()), metrics_path,
                        app_id=f"{route.app_id}:{RULE}", batch_id=batch_id)  # fmt: skip
        finally:
            if kept is not None:
                kept.unpersist()
            batch.unpersist()

    apply_at_start(route.reviews, settings, checkpoint, job="cold", on_released=released_to_gold)
    source = silver.bronze_readings(spark, lake, checkpoint=checkpoint)
    every = None if once else settings.pipeline.cold_trigger
    with scheduler_pool(spark, "cold"):
        return start_exclusive(source, write_batch, settings, checkpoint, job="cold", every=every)
