"""Scoring with the champion models: gold.features rows become gold.predictions, work orders and
alarms (models layer).

The models served are the champions (plantlake.models.jobs.champions). Scores come from
`mlflow.pyfunc.spark_udf` over FEATURE_COLUMNS, so the feature rows never leave Spark.

One path serves both modes: the streaming scorer is the hook of the gold.features job (each
micro-batch's new and updated feature rows, `scoring_mode = stream`), and `plantlake models
score` scores what the current champions have not scored yet (`scoring_mode = batch`). Either
way: MERGE into gold.predictions on its key, then plan the work orders
(plantlake.models.logic.work_orders) and MERGE them into gold.work_orders, then send one alarm per
newly opened order to `<prefix>.alarms` and stamp the order's `alerted_at` once Kafka
acknowledged it (plantlake.models.jobs.alarms, which never sends one order's alarm twice, even when
a run stopped between the send and the stamp).

gold.work_orders keeps event times in epoch ms and as timestamps: `opened_at` is the feature time
that opened the order, `closed_at` the time of the repair or inspection that closed it;
`created_at`, `updated_at` and `alerted_at` are wall-clock times of this job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import reduce

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from rich.console import Console

from plantlake.adapters.delta import (
    append_once,
    idempotent_dml,
    read_delta,
    require_table,
    writer_id,
)
from plantlake.adapters.restarts import failure_reason
from plantlake.core.clock import now_ms
from plantlake.core.config import Settings
from plantlake.core.contracts import (
    GOLD_FEATURES,
    GOLD_PREDICTIONS,
    GOLD_WORK_ORDERS,
    SILVER_MAINTENANCE_EVENTS,
)
from plantlake.core.errors import SourceError
from plantlake.core.topics import topic
from plantlake.models.jobs.alarms import announce
from plantlake.models.jobs.champions import (
    CHAMPION,
    Champion,
    UntrustedChampion,
    champions,
    policy,
)
from plantlake.models.logic.work_orders import (
    OPEN,
    WORK_ORDER_COLUMNS,
    WORK_ORDER_SCHEMA,
    Alert,
    Plan,
    RepairOrInspection,
    WorkOrder,
    plan_work_orders,
)
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS, MAINTENANCE_KINDS

BATCH, STREAM = "batch", "stream"
PREDICTION_COLUMNS: tuple[str, ...] = (
    "model_name", "model_version", "model_kind", "asset", "asset_class", "feature_time",
    "feature_time_ms", "knowable_at", "score", "threshold", "alert", "horizon_hours",
    "scoring_mode", "scored_at",
)  # fmt: skip
# Wall-clock columns of gold.work_orders: epoch ms in the pure logic, timestamps in the table.
_WALL_CLOCK = ("created_at", "updated_at", "alerted_at")


def _cannot_score_now() -> tuple[type[BaseException], ...]:
    """What stops scoring for now but not the features job: an unreachable registry (our
    SourceError from the look-ups, MLflow's or requests' own from a model download), or a
    champion alias on a version promotion did not pass."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    return SourceError, UntrustedChampion, MlflowException, RequestException


@dataclass
class Summary:
    """What one scoring run did."""

    scored: dict[str, int] = field(default_factory=dict)  # champion label -> rows
    alerts: int = 0
    opened: int = 0
    updated: int = 0
    closed: int = 0
    announced: int = 0

    def line(self) -> str:
        models = ", ".join(f"{k}: {v}" for k, v in self.scored.items()) or "nothing new"
        return (
            f"scored {models}; {self.alerts} alert(s); work orders {self.opened} opened, "
            f"{self.updated} updated, {self.closed} closed; {self.announced} alarm(s) sent"
        )


_udfs: dict[tuple[str, str], Callable] = {}


def model_udf(spark: SparkSession, model_uri: str):
    """The model as a Spark UDF returning a double, loaded once per Spark application."""
    import mlflow.pyfunc

    key = (spark.sparkContext.applicationId, model_uri)
    if key not in _udfs:
        # models:/ resolves through the tracking server use_tracking_server set (which also
        # turns off MLflow's per-file download bars).
        _udfs[key] = mlflow.pyfunc.spark_udf(
            spark, model_uri, result_type="double", env_manager="local"
        )
    return _udfs[key]


def score_features(
    features: DataFrame,
    *,
    model_uri: str,
    model_name: str,
    model_version: str,
    model_kind: str,
    threshold: float,
    horizon_hours: float,
    scoring_mode: str,
    keep: Sequence[str] = (),
) -> DataFrame:
    """Score feature rows with one model.

    Grain in: one gold.features row (asset, asset_class, feature_time_ms, knowable_at_ms and
    FEATURE_COLUMNS). Grain out: one gold.predictions row (PREDICTION_COLUMNS, then `keep`);
    `alert` is `score >= threshold` (false for a score the model could not give).
    """
    udf = model_udf(features.sparkSession, model_uri)
    inputs = F.struct(*(F.col(c).cast("double").alias(c) for c in FEATURE_COLUMNS))
    scored = features.select(
        F.lit(model_name).alias("model_name"),
        F.lit(str(model_version)).alias("model_version"),
        F.lit(model_kind).alias("model_kind"),
        "asset", "asset_class",
        F.timestamp_millis("feature_time_ms").alias("feature_time"), "feature_time_ms",
        F.timestamp_millis("knowable_at_ms").alias("knowable_at"),
        udf(inputs).alias("score"),
        F.lit(float(threshold)).alias("threshold"),
        F.lit(float(horizon_hours)).cast("double").alias("horizon_hours"),
        F.lit(scoring_mode).alias("scoring_mode"),
        F.current_timestamp().alias("scored_at"),
        *keep,
    )  # fmt: skip
    alert = F.coalesce((F.col("score") >= F.col("threshold")) & ~F.isnan("score"), F.lit(False))
    return scored.withColumn("alert", alert).select(*PREDICTION_COLUMNS, *keep)


def write_predictions(predictions: DataFrame, path: str, *, txn: tuple[str, int] | None) -> None:
    """MERGE prediction rows on gold.predictions' key (a re-scored row replaces its score).

    `txn` = (app id, batch id) of a streaming micro-batch makes a retried batch a no-op.
    """
    session = predictions.sparkSession
    if not DeltaTable.isDeltaTable(session, path):
        app_id, batch_id = txn or (f"scoring-batch:{time.time_ns()}", 0)
        append_once(predictions, path, app_id=app_id, batch_id=batch_id)
        return
    on = GOLD_PREDICTIONS.merge_on()
    guard = idempotent_dml(session, app_id=txn[0], batch_id=txn[1]) if txn else nullcontext()
    with guard:
        (
            DeltaTable.forPath(session, path).alias("t")
            .merge(predictions.alias("s"), on)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )  # fmt: skip


def _alert(row) -> Alert:
    return Alert(
        asset=row["asset"], asset_class=row["asset_class"], model_name=row["model_name"],
        model_version=row["model_version"], model_kind=row["model_kind"],
        feature_time_ms=int(row["feature_time_ms"]), score=float(row["score"]),
        threshold=float(row["threshold"]), horizon_hours=row["horizon_hours"],
        features={c: row[c] for c in FEATURE_COLUMNS},
    )  # fmt: skip


def read_orders(spark: SparkSession, path: str, *, assets: Sequence[str]) -> list[WorkOrder]:
    """Every open work order, and the closed ones of `assets`."""
    if not DeltaTable.isDeltaTable(spark, path):
        return []
    wanted = F.col("status") == OPEN
    if assets:
        wanted = wanted | F.col("asset").isin(list(assets))
    columns = [
        F.unix_millis(c.removesuffix("_ms")).alias(c) if c.removesuffix("_ms") in _WALL_CLOCK else c
        for c in WORK_ORDER_COLUMNS
    ]
    rows = read_delta(spark, path).where(wanted).select(*columns).collect()
    return [WorkOrder.from_row(row.asDict()) for row in rows]


def read_maintenance(spark: SparkSession, settings: Settings, *, assets: Sequence[str]):
    """Repairs and inspections of `assets` from silver.maintenance_events (none if no table)."""
    path = SILVER_MAINTENANCE_EVENTS.path(settings.lake)
    if not assets or not DeltaTable.isDeltaTable(spark, path):
        return []
    rows = (
        read_delta(spark, path)
        .where(F.col("asset").isin(list(assets)) & F.col("event").isin(list(MAINTENANCE_KINDS)))
        .select("asset", "event", "event_time_ms")
        .collect()
    )
    return [RepairOrInspection(r.asset, r.event, int(r.event_time_ms)) for r in rows]


def write_orders(spark: SparkSession, orders: Sequence[WorkOrder], path: str) -> None:
    """MERGE work orders on work_order_id (their content is decided by the plan, so a repeat of
    the same plan writes the same rows)."""
    rows = spark.createDataFrame([o.as_row() for o in orders], WORK_ORDER_SCHEMA)
    table = rows.select(
        "work_order_id", "asset", "asset_class", "failure_mode", "status",
        F.timestamp_millis("opened_feature_time_ms").alias("opened_at"),
        "opened_feature_time_ms", "opened_score",
        F.timestamp_millis("latest_feature_time_ms").alias("latest_feature_time"),
        "latest_feature_time_ms", "latest_score", "alert_count",
        "model_name", "model_version", "model_kind", "threshold", "horizon_hours", "evidence",
        F.timestamp_millis("closed_event_time_ms").alias("closed_at"),
        "closed_event", "closed_event_time_ms", "closed_reason",
        *(F.timestamp_millis(f"{c}_ms").alias(c) for c in _WALL_CLOCK),
    )  # fmt: skip
    if not DeltaTable.isDeltaTable(spark, path):
        append_once(table, path, app_id=f"work-orders:{time.time_ns()}", batch_id=0)
        return
    (
        DeltaTable.forPath(spark, path).alias("t")
        .merge(table.alias("s"), GOLD_WORK_ORDERS.merge_on())
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )  # fmt: skip


def act_on_alerts(spark: SparkSession, settings: Settings, alerts: Sequence[Alert]) -> Plan:
    """Plan the work orders from alerts, open orders and the maintenance log; write; announce."""
    path = GOLD_WORK_ORDERS.path(settings.lake)
    alerting = sorted({a.asset for a in alerts})
    orders = read_orders(spark, path, assets=alerting)
    assets = sorted({*alerting, *(o.asset for o in orders if o.status == OPEN)})
    maintenance = read_maintenance(spark, settings, assets=assets)
    plan = plan_work_orders(alerts, orders, maintenance, now_ms=now_ms())
    if plan.orders:
        write_orders(spark, plan.orders, path)
    return plan


def score_and_act(
    settings: Settings,
    work: Sequence[tuple[Champion, DataFrame]],
    *,
    spark: SparkSession,
    scoring_mode: str,
    txn: tuple[str, int] | None = None,
) -> Summary:
    """Score each champion's feature rows, MERGE the predictions, then work orders and alarms."""
    summary = Summary()
    parts = []
    for found, rows in work:
        p = policy(found, default_horizon_hours=settings.models.horizon_hours)
        parts.append(
            score_features(
                rows, model_uri=found.uri, model_name=found.name, model_version=found.version,
                model_kind=p.kind, threshold=p.threshold, horizon_hours=p.horizon_hours,
                scoring_mode=scoring_mode, keep=FEATURE_COLUMNS,
            )
        )  # fmt: skip
    alerts: list[Alert] = []
    if parts:
        scored = reduce(DataFrame.unionByName, parts).persist()
        try:
            counts = scored.groupBy("model_name", "model_version").count().collect()
            summary.scored = {f"{r.model_name} v{r.model_version}": r["count"] for r in counts}
            write_predictions(
                scored.select(*PREDICTION_COLUMNS), GOLD_PREDICTIONS.path(settings.lake), txn=txn
            )
            alerts = [_alert(r) for r in scored.where("alert").collect()]
        finally:
            scored.unpersist()
    plan = act_on_alerts(spark, settings, alerts)
    summary.alerts = len(alerts)
    summary.opened, summary.updated = len(plan.opened), len(plan.updated)
    summary.closed = len(plan.closed)
    summary.announced = announce(spark, settings, plan.to_announce)
    return summary


def streaming_scorer(settings: Settings) -> Callable[[DataFrame, int], None]:
    """The gold.features job's hook: score each batch's feature rows with the champions.

    The registry is asked once per batch (two small REST calls), so a promotion takes effect on
    the next batch; without any champion the hook does nothing. While the registry cannot be
    reached, or a champion alias points at a version promotion did not pass, the hook skips,
    saying why, and the features job goes on; the first batch after that is cured (and the first batch of every run) scores every gold.features row the
    champions have not scored, so nothing skipped stays unscored.
    """
    app_ids: dict[str, str] = {}
    behind = [True]  # a run starts by catching up on what an earlier one skipped
    # Fail fast on an unreachable registry: MLflow's defaults retry for minutes, every batch.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

    def on_features(rows: DataFrame, batch_id: int) -> None:
        try:
            found = champions(settings)
            if not found:
                return
            spark = rows.sparkSession
            checkpoint = settings.lake.checkpoint_path("features")
            if checkpoint not in app_ids:
                app_ids[checkpoint] = f"scoring:{writer_id(spark, checkpoint)}"
            work = _catch_up(rows, settings, found) if behind[0] else [(c, rows) for c in found]
            summary = score_and_act(
                settings, work, spark=spark, scoring_mode=STREAM, txn=(app_ids[checkpoint], batch_id)
            )  # fmt: skip
        except _cannot_score_now() as exc:
            behind[0] = True
            print(f"scoring: batch {batch_id} skipped, its rows are scored once the champions "
                  f"can be loaded again: {failure_reason(exc)}", flush=True)  # fmt: skip
            return
        caught_up = " (caught up on rows skipped before)" if behind[0] else ""
        behind[0] = False
        print(f"scoring: batch {batch_id}: {summary.line()}{caught_up}", flush=True)

    return on_features


def _catch_up(rows: DataFrame, settings: Settings, found: Sequence[Champion]):
    """Per champion, the batch's rows and every gold.features row it has not scored."""
    spark = rows.sparkSession
    features = read_delta(spark, GOLD_FEATURES.path(settings.lake))
    path = GOLD_PREDICTIONS.path(settings.lake)
    predictions = read_delta(spark, path) if DeltaTable.isDeltaTable(spark, path) else None
    key = ["asset", "feature_time_ms"]
    return [
        (c, rows.unionByName(unscored(features, predictions, c).select(*rows.columns))
         .dropDuplicates(key))
        for c in found
    ]  # fmt: skip


def unscored(features: DataFrame, predictions: DataFrame | None, found: Champion) -> DataFrame:
    """Feature rows the champion has no prediction for, or whose features were recomputed
    (a late reading) after it scored them. Grain: one gold.features row."""
    if predictions is None:
        return features
    done = predictions.where(
        (F.col("model_name") == found.name) & (F.col("model_version") == found.version)
    ).select("asset", "feature_time_ms", F.col("scored_at").alias("_scored_at"))
    todo = F.col("_scored_at").isNull()
    if "computed_at" in features.columns:
        todo = todo | (F.col("computed_at") > F.col("_scored_at"))
    return features.join(done, ["asset", "feature_time_ms"], "left").where(todo).drop("_scored_at")


def run_batch_scoring(spark: SparkSession, settings: Settings, *, console: Console) -> Summary:
    """Score the gold.features rows the current champions have not scored (`plantlake models
    score`), then update work orders and send alarms. Raises SourceError without gold.features."""
    lake = settings.lake
    found = champions(settings)
    if not found:
        names = f"{settings.models.failure_model}, {settings.models.anomaly_model}"
        console.print(f"no [bold]{CHAMPION}[/] alias on {names} in {settings.mlflow.uri}: "
                      "nothing to score (train and promote first)")  # fmt: skip
        # Repairs still close the open orders.
        summary = score_and_act(settings, [], spark=spark, scoring_mode=BATCH)
        console.print(f"{GOLD_WORK_ORDERS.name}: {summary.closed} closed")
        return summary
    features_path = require_table(
        spark, GOLD_FEATURES, lake, hint="Run `plantlake pipeline run features --once` first."
    )
    features = read_delta(spark, features_path)
    predictions_path = GOLD_PREDICTIONS.path(lake)
    predictions = (
        read_delta(spark, predictions_path)
        if DeltaTable.isDeltaTable(spark, predictions_path)
        else None
    )
    started = time.monotonic()
    pending = [(c, unscored(features, predictions, c).persist()) for c in found]
    try:
        work = []
        for c, todo in pending:
            n = todo.count()
            console.print(f"{c.label} ({c.tags.get('kind', '?')}): {n} feature row(s) to score")
            if n:
                work.append((c, todo))
        summary = score_and_act(settings, work, spark=spark, scoring_mode=BATCH)
    finally:
        for _, todo in pending:
            todo.unpersist()
    console.print(
        f"{GOLD_PREDICTIONS.name}: {sum(summary.scored.values())} row(s) written, "
        f"{summary.alerts} alert(s)"
    )
    console.print(
        f"{GOLD_WORK_ORDERS.name}: {summary.opened} opened, {summary.updated} updated, "
        f"{summary.closed} closed; {summary.announced} alarm(s) sent to "
        f"{topic('alarms').name(settings.kafka.topic_prefix)} "
        f"({time.monotonic() - started:.1f}s)"
    )
    return summary
