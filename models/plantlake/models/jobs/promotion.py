"""`plantlake models promote|rollback`: move the `champion` alias only on evidence (models).

A challenger becomes champion when, on the latest time-split holdout (rebuilt now from the
current gold.features and silver.maintenance_events), both thresholded at the alert budget, the
lower bound of its recall's bootstrap interval (over the holdout's failures) is not below the
champion's (equal bounds go to the longer median lead time: `promotion_verdict`), its signature is exactly the feature table's
columns as doubles, and a smoke score through `mlflow.pyfunc.spark_udf` over real feature rows
returns finite numbers. The decision and its evidence are written to the challenger's version
tags whatever the outcome; the champions before it are kept in the registered model's tag
`champion_history`, which `rollback` walks back.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from rich.console import Console

from plantlake.adapters.delta import read_delta
from plantlake.core.config import Settings
from plantlake.core.contracts import GOLD_FEATURES
from plantlake.core.errors import PlantlakeError
from plantlake.models.jobs.champions import (
    CHAMPION,
    PROMOTED,
    PROMOTED_TAG,
    alias_version,
    registry_client,
)
from plantlake.models.jobs.train import (
    CHALLENGER,
    labelled_rows,
    policy_for,
    read_inputs,
    scores_of,
)
from plantlake.models.logic.budget_evaluation import (
    MethodResult,
    outcomes_at_budget,
    promotion_verdict,
    summarize,
)
from plantlake.models.logic.training_set import VALIDATION
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS

HISTORY_TAG = "champion_history"


class PromotionError(PlantlakeError):
    code = "promotion"


@dataclass(frozen=True)
class Decision:
    model: str
    challenger: str
    champion: str | None
    promoted: bool
    reason: str
    challenger_holdout: MethodResult
    champion_holdout: MethodResult | None
    holdout_from_ms: int
    holdout_to_ms: int


def _alias_version(settings: Settings, name: str, alias: str) -> str | None:
    found = alias_version(settings, name, alias)
    return None if found is None else str(found.version)


def signature_problems(model_uri: str) -> list[str]:
    """Why a model's input signature is not gold.features' FEATURE_COLUMNS as doubles."""
    from mlflow.models import get_model_info

    schema = get_model_info(model_uri).signature
    if schema is None or schema.inputs is None:
        return ["the model has no input signature"]
    columns = {c.name: str(c.type) for c in schema.inputs.inputs}
    problems = [f"missing feature {c}" for c in FEATURE_COLUMNS if c not in columns]
    problems += [f"unknown input {c}" for c in columns if c not in FEATURE_COLUMNS]
    problems += [
        f"{c} is {t}, not double"
        for c, t in columns.items()
        if c in FEATURE_COLUMNS and "double" not in t
    ]
    return problems


def smoke_score(spark: SparkSession, settings: Settings, model_uri: str, *, rows: int = 50) -> int:
    """Score the newest gold.features rows through spark_udf; returns how many scored finitely."""
    import mlflow.pyfunc

    features = read_delta(spark, GOLD_FEATURES.path(settings.lake))
    sample = features.orderBy(F.col("feature_time_ms").desc()).limit(rows)
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")
    frame: pd.DataFrame = sample.select(udf(F.struct(*FEATURE_COLUMNS)).alias("score")).toPandas()
    scored = frame["score"]
    finite = int(scored.map(math.isfinite).sum())
    if finite != len(scored) or finite == 0:
        raise PromotionError(
            f"Smoke score of {model_uri} through spark_udf gave {finite} finite scores of {len(scored)}.",
            hint="Check the model's input handling of missing features (NaN).",
        )
    return finite


def _holdout(spark: SparkSession, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latest time-split holdout and the failures it is judged against."""
    models = settings.models
    policy = policy_for(models)
    inputs = read_inputs(spark, settings, cutoff_ms=None)
    cutoff = int(inputs.features["feature_time_ms"].max())
    rows = labelled_rows(inputs, models, policy=policy, cutoff_ms=cutoff)
    holdout = rows[rows["split"] == VALIDATION]
    if holdout.empty or holdout["label"].sum() == 0:
        raise PromotionError(
            "The latest holdout has no failure to judge the models on.",
            hint="Backfill more history or wait for more CMMS events, then retry.",
        )
    return holdout, inputs.events[inputs.events["event"] == "failure"]


def _judge(model_uri: str, holdout: pd.DataFrame, failures: pd.DataFrame, settings) -> MethodResult:
    """The model at the alert budget on the holdout. The bootstrap's fixed random state draws
    the same resamples of the same failures for champion and challenger: a paired comparison."""
    return summarize(outcomes_at_budget(
        holdout, failures, method=model_uri, scores=scores_of(model_uri, holdout),
        budget=settings.models.alert_budget,
        horizon_ms=int(settings.models.horizon_hours * 3_600_000),
    ))  # fmt: skip


def promote(spark: SparkSession, settings: Settings, name: str, *, console: Console) -> Decision:
    """Judge `name@challenger` against `name@champion` and move the alias if it wins."""
    client = registry_client(settings)
    challenger = _alias_version(settings, name, CHALLENGER)
    if challenger is None:
        raise PromotionError(
            f"{name} has no {CHALLENGER} version.", hint="Run `plantlake models train`."
        )
    champion = _alias_version(settings, name, CHAMPION)
    if champion == challenger:
        raise PromotionError(f"{name} v{challenger} is already {CHAMPION}.")
    holdout, failures = _holdout(spark, settings)
    uri = f"models:/{name}/{challenger}"
    ours = _judge(uri, holdout, failures, settings)
    theirs = _judge(f"models:/{name}/{champion}", holdout, failures, settings) if champion else None
    problems = signature_problems(uri)
    if problems:
        promoted, reason = False, "signature does not match gold.features: " + "; ".join(problems)
    elif not (verdict := promotion_verdict(ours, theirs)).promoted:
        promoted, reason = False, verdict.reason
    else:
        smoke = smoke_score(spark, settings, uri)
        promoted = True
        reason = f"{verdict.reason}; signature matches; spark_udf smoke scored {smoke} rows"
    decision = Decision(
        model=name, challenger=challenger, champion=champion, promoted=promoted, reason=reason,
        challenger_holdout=ours, champion_holdout=theirs,
        holdout_from_ms=int(holdout["label_time_ms"].min()),
        holdout_to_ms=int(holdout["label_time_ms"].max()),
    )  # fmt: skip
    _record(client, decision)
    if promoted:
        history = _history(client, name)
        if champion:
            history.append(champion)
        client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
        client.set_registered_model_alias(name, CHAMPION, challenger)
    console.print(
        f"{name}: v{challenger} {'promoted to' if promoted else 'NOT promoted to'} {CHAMPION} "
        f"(previous: {'v' + champion if champion else 'none'}): {reason}"
    )
    return decision


def _record(client, decision: Decision) -> None:
    evidence = asdict(decision)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    tags = {
        PROMOTED_TAG: PROMOTED if decision.promoted else "rejected",
        "promotion.reason": decision.reason[:4000],
        "promotion.decided_at": when,
        "promotion.metric": "recall_lower_bound_at_alert_budget",
        "promotion.challenger_recall": repr(decision.challenger_holdout.recall),
        "promotion.challenger_recall_lower_bound": repr(decision.challenger_holdout.recall_ci[0]),
        "promotion.champion_version": decision.champion or "",
        "promotion.champion_recall": repr(decision.champion_holdout.recall)
        if decision.champion_holdout else "",
        "promotion.champion_recall_lower_bound": repr(decision.champion_holdout.recall_ci[0])
        if decision.champion_holdout else "",
        "promotion.evidence": json.dumps(evidence, default=str)[:4900],
    }  # fmt: skip
    for key, value in tags.items():
        client.set_model_version_tag(decision.model, decision.challenger, key, value)
    client.update_model_version(
        decision.model, decision.challenger,
        description=f"{when}: {tags['promotion.decision']} — {decision.reason}",
    )  # fmt: skip


def _history(client, name: str) -> list[str]:
    tag = client.get_registered_model(name).tags.get(HISTORY_TAG, "")
    return [v for v in tag.split(",") if v]


def rollback(settings: Settings, name: str, *, console: Console) -> str:
    """Point `champion` back at the previous champion; returns that version."""
    client = registry_client(settings)
    current = _alias_version(settings, name, CHAMPION)
    history = _history(client, name)
    if not history:
        raise PromotionError(f"{name} has no previous {CHAMPION} to roll back to.")
    previous = history.pop()
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
    when = datetime.now(UTC).isoformat(timespec="seconds")
    if current:
        client.set_model_version_tag(name, current, "promotion.rolled_back_at", when)
    client.set_model_version_tag(name, previous, "promotion.restored_at", when)
    console.print(f"{name}: {CHAMPION} rolled back from v{current} to v{previous}")
    return previous
