"""`plantlake models train`: build a point-in-time training set, train, log and register (models).

Reads gold.features and silver.maintenance_events as of a cutoff, and planners' verdicts on work
orders (gold.work_order_feedback) when the workbench has written any. Builds the training set
(models.training_set: the verdicts change labels by its documented rule, and the run reports how
many) and keeps it in gold.training_sets under this training's id. Trains the failure predictor
(gradient-boosted trees) and the anomaly detector (Isolation Forest, fitted on healthy rows),
measures both and the baselines (static limits, rolling z-score, ISO 10816 zones) on the
time-split holdout, every method thresholded at the same alert budget, against the CMMS failures
alone (so no model is scored on the alarms of the model that raised the orders), and logs each to
MLflow with its parameters, metrics, signature, input example, the training set as its dataset,
and lineage (the Delta version of every input table, the cutoff). Both models are registered and
their new versions get the alias `challenger`; `plantlake models promote` decides whether a
challenger becomes `champion`.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from rich.console import Console

from plantlake.adapters.delta import delta_version, read_delta, require_table, table_exists
from plantlake.adapters.mlflow_tracking import use_tracking_server
from plantlake.core.clock import iso_ms
from plantlake.core.config import ModelSettings, Settings
from plantlake.core.contracts import (
    GOLD_FEATURES,
    GOLD_TRAINING_SETS,
    GOLD_WORK_ORDER_FEEDBACK,
    SILVER_MAINTENANCE_EVENTS,
)
from plantlake.core.errors import SourceError
from plantlake.models.jobs.evaluation_report import method_table
from plantlake.models.logic.budget_evaluation import MethodResult, outcomes_at_budget, summarize
from plantlake.models.logic.estimators import fit_anomaly_model, fit_failure_model
from plantlake.models.logic.evaluation import AlertQuality, alert_quality, budget_threshold
from plantlake.models.logic.methods import STATIC_LIMITS, baseline_method_scores
from plantlake.models.logic.training_set import (
    EVENT,
    FEEDBACK_COLUMNS,
    INGEST,
    TRAIN,
    VALIDATION,
    LabelChanges,
    LabelPolicy,
    build_training_set,
    feedback_labels,
    label_changes,
    labelled_set,
)
from plantlake.models.pyfunc import ANOMALY, FAILURE, RiskScoreModel
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS, FEATURE_VERSION

EXPERIMENT = "plantlake-predictive-maintenance"
CHALLENGER = "challenger"
MIN_FAILURES = 2  # per split: fewer cannot say anything about recall


def no_feedback() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="int64" if name.endswith("_ms") else object)
                         for name in ("feedback_id", *FEEDBACK_COLUMNS)})  # fmt: skip


@dataclass(frozen=True)
class TrainingInputs:
    features: pd.DataFrame
    events: pd.DataFrame
    versions: dict[str, int]  # table name -> Delta version read
    # Planners' verdicts (gold.work_order_feedback); none before the workbench wrote any.
    feedback: pd.DataFrame = field(default_factory=no_feedback)


@dataclass
class TrainedModel:
    name: str
    kind: str
    version: str
    run_id: str
    holdout: AlertQuality
    scores: np.ndarray  # of the holdout rows, for the side-by-side comparison


@dataclass
class TrainingReport:
    training_set_id: str
    cutoff_ms: int
    rows: dict[str, int]
    positives: dict[str, int]
    baseline: AlertQuality  # the static limits, thresholded at the alert budget like the models
    feedback: LabelChanges | None = None  # what planners' verdicts changed, when there were any
    models: list[TrainedModel] = field(default_factory=list)
    # Every model and baseline at the alert budget, with bootstrap intervals over failures.
    comparison: list[MethodResult] = field(default_factory=list)


def policy_for(models: ModelSettings, *, as_of: str = EVENT) -> LabelPolicy:
    return LabelPolicy(
        horizon_ms=int(models.horizon_hours * 3_600_000),
        every_ms=models.label_every_minutes * 60_000,
        max_staleness_ms=models.max_staleness_minutes * 60_000,
        as_of=as_of,
    )


def read_inputs(
    spark: SparkSession, settings: Settings, *, cutoff_ms: int | None
) -> TrainingInputs:
    """gold.features, silver.maintenance_events and, when the workbench has written it,
    gold.work_order_feedback (pandas), at their current Delta versions."""
    lake = settings.lake
    hints = {
        GOLD_FEATURES: "Run `plantlake pipeline run features --once` first.",
        SILVER_MAINTENANCE_EVENTS: "Run `plantlake pipeline run cmms` first.",
    }
    versions = {
        ref.name: delta_version(spark, require_table(spark, ref, lake, hint=hint))
        for ref, hint in hints.items()
    }
    # Read the exact versions recorded as lineage, not whatever is newest a moment later.
    features = (
        read_delta(spark, GOLD_FEATURES.path(lake), version=versions[GOLD_FEATURES.name])
        .select("asset", "asset_class", "feature_time_ms", "knowable_at_ms", *FEATURE_COLUMNS)
    )  # fmt: skip
    events = read_delta(
        spark,
        SILVER_MAINTENANCE_EVENTS.path(lake),
        version=versions[SILVER_MAINTENANCE_EVENTS.name],
    ).select("asset", "event", "failure_mode", "event_time_ms")
    if cutoff_ms is not None:
        features = features.where(F.col("feature_time_ms") <= cutoff_ms)
        events = events.where(F.col("event_time_ms") <= cutoff_ms)
    feedback = no_feedback()
    path = GOLD_WORK_ORDER_FEEDBACK.path(lake)
    if table_exists(spark, path):
        versions[GOLD_WORK_ORDER_FEEDBACK.name] = delta_version(spark, path)
        verdicts = read_delta(spark, path, version=versions[GOLD_WORK_ORDER_FEEDBACK.name])
        verdicts = verdicts.select("feedback_id", *FEEDBACK_COLUMNS)
        if cutoff_ms is not None:
            verdicts = verdicts.where(F.col("decided_at_ms") <= cutoff_ms)
        feedback = verdicts.toPandas()
    return TrainingInputs(features.toPandas(), events.toPandas(), versions, feedback)


def labelled_rows(
    inputs: TrainingInputs, models: ModelSettings, *, policy: LabelPolicy, cutoff_ms: int
) -> pd.DataFrame:
    """The training set of `inputs` as of `cutoff_ms`, split as the settings say (train and
    promotion build their sets here, so a holdout means the same thing to both)."""
    return build_training_set(
        _known_features(inputs, policy, cutoff_ms), inputs.events, policy=policy,
        observed_until_ms=cutoff_ms, validation_fraction=models.validation_fraction,
        gap_ms=int(models.split_gap_hours * 3_600_000), feedback=inputs.feedback,
    )  # fmt: skip


def _known_features(inputs: TrainingInputs, policy: LabelPolicy, cutoff_ms: int) -> pd.DataFrame:
    if policy.as_of == INGEST:
        return inputs.features[inputs.features["knowable_at_ms"] <= cutoff_ms]
    return inputs.features


def feedback_effect(
    inputs: TrainingInputs, *, policy: LabelPolicy, cutoff_ms: int, console: Console
) -> LabelChanges | None:
    """How many labels planners' verdicts changed (against the CMMS alone), printed; None when
    there are no verdicts."""
    if inputs.feedback.empty:
        return None
    features = _known_features(inputs, policy, cutoff_ms)
    extra = feedback_labels(
        inputs.feedback, inputs.events, horizon_ms=policy.horizon_ms, observed_until_ms=cutoff_ms
    )
    changes = label_changes(
        labelled_set(features, inputs.events, policy=policy, observed_until_ms=cutoff_ms),
        labelled_set(features, inputs.events, policy=policy, observed_until_ms=cutoff_ms,
                     feedback=inputs.feedback),
    )  # fmt: skip
    judged = ", ".join(
        f"{n} {verdict.replace('_', ' ')}" for verdict, n in sorted(extra.verdicts.items())
    )
    console.print(
        f"planner feedback ({GOLD_WORK_ORDER_FEEDBACK.name}): {sum(extra.verdicts.values())} work "
        f"orders judged ({judged or 'none by the cutoff'}), {len(extra.events) // 2} done counted as "
        f"failures, {extra.done_in_cmms} already in the CMMS; it changed {changes.changed} labels "
        f"({changes.positives} to positive, {changes.negatives} confirmed negative"
        f"{f', {changes.removed} left out' if changes.removed else ''})"
    )
    return changes


def _check_enough(rows: pd.DataFrame, events: pd.DataFrame) -> None:
    for split in (TRAIN, VALIDATION):
        part = rows[rows["split"] == split]
        positives = int(part["label"].sum())
        if positives == 0 or part["asset"].nunique() == 0:
            failures = int((events["event"] == "failure").sum())
            raise SourceError(
                f"The {split} split has {len(part)} rows and {positives} positive labels "
                f"({failures} failures in silver.maintenance_events): too little history to "
                "train and measure a failure model.",
                hint="Backfill more history (`plantlake ingest history --days 30`) and rerun "
                "silver, `pipeline run cmms` and `pipeline run features`.",
            )


def train_models(
    spark: SparkSession,
    settings: Settings,
    *,
    console: Console,
    cutoff_ms: int | None = None,
    as_of: str = EVENT,
) -> TrainingReport:
    """Build the training set, train, log and register both models (see the module doc)."""
    import mlflow

    models = settings.models
    policy = policy_for(models, as_of=as_of)
    inputs = read_inputs(spark, settings, cutoff_ms=cutoff_ms)
    if inputs.features.empty:
        raise SourceError(
            "gold.features has no rows.", hint="Run `plantlake pipeline run features --once`."
        )
    cutoff = int(cutoff_ms if cutoff_ms is not None else inputs.features["feature_time_ms"].max())
    rows = labelled_rows(inputs, models, policy=policy, cutoff_ms=cutoff)
    changes = feedback_effect(inputs, policy=policy, cutoff_ms=cutoff, console=console)
    _check_enough(rows, inputs.events)
    train, holdout = rows[rows["split"] == TRAIN], rows[rows["split"] == VALIDATION]
    failures = inputs.events[inputs.events["event"] == "failure"]
    set_id = uuid.uuid4().hex
    console.print(
        f"training set {set_id}: {len(train)} train rows ({int(train['label'].sum())} positive), "
        f"{len(holdout)} validation rows ({int(holdout['label'].sum())} positive), "
        f"cutoff {iso_ms(cutoff)}, as of {as_of} time"
    )
    set_version = _keep_training_set(spark, settings, rows, set_id=set_id, cutoff_ms=cutoff)

    holdout = holdout.reset_index(drop=True)
    baselines = baseline_method_scores(train, holdout)
    base = baselines[STATIC_LIMITS]
    report = TrainingReport(
        training_set_id=set_id, cutoff_ms=cutoff,
        rows={TRAIN: len(train), VALIDATION: len(holdout)},
        positives={TRAIN: int(train["label"].sum()), VALIDATION: int(holdout["label"].sum())},
        feedback=changes,
        baseline=alert_quality(holdout.assign(score=base), failures,
                               threshold=budget_threshold(base, models.alert_budget),
                               horizon_ms=policy.horizon_ms),
    )  # fmt: skip
    use_tracking_server(settings)
    mlflow.set_experiment(EXPERIMENT)
    lineage = {
        **{f"lineage.{name}.version": str(v) for name, v in inputs.versions.items()},
        f"lineage.{GOLD_TRAINING_SETS.name}.version": str(set_version),
        "training_cutoff": iso_ms(cutoff),
        "training_cutoff_ms": str(cutoff),
        "training_set_id": set_id,
        "feature_version": FEATURE_VERSION,
        "feedback_labels_changed": str(changes.changed if changes else 0),
    }
    for kind, name, fit in (
        (FAILURE, models.failure_model, fit_failure_model),
        (ANOMALY, models.anomaly_model, fit_anomaly_model),
    ):
        trained = _train_one(
            spark, settings, kind=kind, name=name, estimator=fit(train), train=train,
            holdout=holdout, failures=failures, policy=policy, lineage=lineage,
            baseline=report.baseline, set_version=set_version,
        )  # fmt: skip
        report.models.append(trained)
        console.print(
            f"{name} v{trained.version} ({kind}) → {CHALLENGER}: recall {trained.holdout.recall:.2f} "
            f"at a {models.alert_budget:.0%} alert budget, precision {trained.holdout.precision:.2f}, "
            f"lead time {trained.holdout.mean_lead_time_h:.1f} h, false alarms "
            f"{trained.holdout.false_alarms_per_asset_day:.2f}/asset-day (run {trained.run_id})"
        )
    scores = {f"{m.name} v{m.version}": m.scores for m in report.models} | baselines
    report.comparison = [
        summarize(outcomes_at_budget(holdout, failures, method=method, scores=values,
                                     budget=models.alert_budget, horizon_ms=policy.horizon_ms))
        for method, values in scores.items()
    ]  # fmt: skip
    console.print(method_table(report.comparison, title=(
        f"the holdout at a {models.alert_budget:.0%} alert budget, every method thresholded alike "
        f"({iso_ms(int(holdout['label_time_ms'].min()))} to "
        f"{iso_ms(int(holdout['label_time_ms'].max()))})")))  # fmt: skip
    return report


def _train_one(spark, settings, *, kind, name, estimator, train, holdout, failures, policy,
               lineage, baseline, set_version) -> TrainedModel:  # fmt: skip
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.models import infer_signature

    models = settings.models
    probe = RiskScoreModel(estimator, kind=kind, threshold=0.0)
    threshold = budget_threshold(probe.scores(holdout), models.alert_budget)
    wrapped = RiskScoreModel(estimator, kind=kind, threshold=threshold)
    quality = alert_quality(
        holdout.assign(score=wrapped.scores(holdout)), failures, threshold=threshold,
        horizon_ms=policy.horizon_ms,
    )  # fmt: skip
    x = train[list(FEATURE_COLUMNS)].astype("float64")
    example = x.dropna().head(5)
    example = example if len(example) else x.fillna(0.0).head(5)
    with mlflow.start_run(run_name=f"{kind}-{lineage['training_cutoff'][:10]}") as run:
        mlflow.set_tags({**lineage, "model_kind": kind})
        mlflow.log_params({
            "kind": kind, "estimator": type(estimator).__name__,
            "horizon_hours": models.horizon_hours, "label_every_minutes": models.label_every_minutes,
            "max_staleness_minutes": models.max_staleness_minutes, "as_of": policy.as_of,
            "split_gap_hours": models.split_gap_hours,
            "validation_fraction": models.validation_fraction, "alert_budget": models.alert_budget,
            "train_rows": len(train), "validation_rows": len(holdout),
            "train_positives": int(train["label"].sum()),
            "validation_positives": int(holdout["label"].sum()),
        })  # fmt: skip
        mlflow.log_metrics({**quality.as_metrics("holdout_"), **baseline.as_metrics("baseline_")})
        # MLflow's own Delta detection only knows local and DBFS paths; name the source
        # explicitly so the run records the table location and version it trained on.
        source = DeltaDatasetSource(
            path=GOLD_TRAINING_SETS.path(settings.lake), delta_table_version=set_version
        )
        from mlflow.data.pandas_dataset import from_pandas

        for split, part in ((TRAIN, train), (VALIDATION, holdout)):
            with warnings.catch_warnings():
                # Its integer columns (label, times) are never missing: MLflow's hint is noise.
                warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
                dataset = from_pandas(
                    part, source=source, targets="label",
                    name=f"{GOLD_TRAINING_SETS.name}/{lineage['training_set_id']}/{split}",
                )  # fmt: skip
                mlflow.log_input(dataset, context="training" if split == TRAIN else "validation")
        info = mlflow.pyfunc.log_model(
            name="model", python_model=wrapped, input_example=example,
            signature=infer_signature(example, wrapped.scores(example)),
            registered_model_name=name,
        )  # fmt: skip
    client = use_tracking_server(settings)
    version = str(info.registered_model_version)
    tags = {
        "kind": kind, "alert_threshold": repr(threshold), "horizon_hours": str(models.horizon_hours),
        "holdout_recall": repr(quality.recall), "holdout_metric": "recall_at_alert_budget",
        **lineage,
    }  # fmt: skip
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHALLENGER, version)
    return TrainedModel(name=name, kind=kind, version=version, run_id=run.info.run_id,
                        holdout=quality, scores=wrapped.scores(holdout))  # fmt: skip


def _keep_training_set(spark, settings, rows: pd.DataFrame, *, set_id: str, cutoff_ms: int) -> int:
    """Append the set to gold.training_sets under its id; returns the Delta version written."""
    path = GOLD_TRAINING_SETS.path(settings.lake)
    frame = rows.assign(
        run_id=set_id, training_cutoff_ms=cutoff_ms, created_at=pd.Timestamp.now(tz="UTC")
    )
    frame["failure_mode"] = (
        frame["failure_mode"].astype(object).where(frame["failure_mode"].notna(), None)
    )
    frame[list(FEATURE_COLUMNS)] = frame[list(FEATURE_COLUMNS)].astype("float64")
    (
        spark.createDataFrame(frame)
        .withColumn("label_time", F.timestamp_millis("label_time_ms"))
        .write.format("delta").mode("append").option("mergeSchema", "true").save(path)
    )  # fmt: skip
    return delta_version(spark, path)


def scores_of(model_uri: str, rows: pd.DataFrame) -> np.ndarray:
    """Score pandas feature rows with a registered model (promotion compares models this way)."""
    import mlflow

    return np.asarray(
        mlflow.pyfunc.load_model(model_uri).predict(rows[list(FEATURE_COLUMNS)]), dtype=float
    )
