"""Scoring with the champion models: gold.features rows become gold.predictions, work orders and
alarms (models layer).

The models served are the champions (plantlake.models.jobs.champions). Scores come from
`mlflow.pyfunc.spark_udf` over FEATURE_COLUMNS, so the feature rows never leave Spark.

One path serves both modes: the streaming scorer (plantlake.models.jobs.streaming_scorer) is the
hook of the gold.features job (each micro-batch's new and updated feature rows, `scoring_mode =
stream`), and `plantlake models score` scores what the current champions have not scored yet
(`scoring_mode = batch`). Either way: MERGE into gold.predictions on its key, then plan the work
orders (plantlake.models.logic.work_orders) and MERGE them into gold.work_orders
(plantlake.models.jobs.work_order_store), then send one alarm per newly opened order to
`<prefix>.alarms` and stamp the order's `alerted_at` once Kafka acknowledged it
(plantlake.models.jobs.alarms, which never sends one order's alarm twice, even when a run
stopped between the send and the stamp).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from rich.console import Console

from plantlake.adapters.delta import (
    read_delta,
    require_table,
    table_exists,
    upsert,
)
from plantlake.core.config import Settings
from plantlake.core.contracts import (
    GOLD_FEATURES,
    GOLD_PREDICTIONS,
    GOLD_WORK_ORDERS,
)
from plantlake.core.topics import topic
from plantlake.models.jobs.alarms import announce
from plantlake.models.jobs.champions import (
    CHAMPION,
    Champion,
    champions,
    policy,
)
from plantlake.models.jobs.work_order_store import act_on_alerts
from plantlake.models.logic.work_orders import (
    Alert,
)
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS

BATCH, STREAM = "batch", "stream"
PREDICTION_COLUMNS = GOLD_PREDICTIONS.column_names


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
    app_id, batch_id = txn or (None, 0)
    upsert(predictions, path, on=GOLD_PREDICTIONS.merge_on(), app_id=app_id, batch_id=batch_id)


def _alert(row) -> Alert:
    return Alert(
        asset=row["asset"], asset_class=row["asset_class"], model_name=row["model_name"],
        model_version=row["model_version"], model_kind=row["model_kind"],
        feature_time_ms=int(row["feature_time_ms"]), score=float(row["score"]),
        threshold=float(row["threshold"]), horizon_hours=row["horizon_hours"],
        features={c: row[c] for c in FEATURE_COLUMNS},
    )  # fmt: skip


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
        read_delta(spark, predictions_path) if table_exists(spark, predictions_path) else None
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
