"""Training, registration, promotion and rollback against the real MLflow server and lake."""

import json

import numpy as np
import pytest
from rich.console import Console

from plantlake.core.contracts import GOLD_TRAINING_SETS
from plantlake.models.jobs.champions import CHAMPION
from plantlake.models.jobs.promotion import promote, rollback
from plantlake.models.jobs.train import CHALLENGER, train_models
from plantlake.models.logic.estimators import fit_failure_model
from plantlake.models.pyfunc import FAILURE, RiskScoreModel
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS
from tests.lake_contract import assert_tables_match_contract

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def _client(settings):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow.uri)
    return MlflowClient()


def _register_weak(settings, name, train):
    """A failure model fitted on shuffled labels: a registered, well-formed, useless model."""
    import mlflow
    from mlflow.models import infer_signature

    shuffled = train.assign(label=np.random.default_rng(1).permutation(train["label"].to_numpy()))
    model = RiskScoreModel(fit_failure_model(shuffled), kind=FAILURE, threshold=0.5)
    example = train[list(FEATURE_COLUMNS)].astype("float64").fillna(0.0).head(3)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=model, input_example=example,
            signature=infer_signature(example, model.scores(example)), registered_model_name=name,
        )  # fmt: skip
    return str(info.registered_model_version)


def test_train_promote_reject_and_roll_back(spark, ml_models):
    settings = ml_models
    console = Console(stderr=True)
    client = _client(settings)
    name = settings.models.failure_model

    report = train_models(spark, settings, console=console)
    assert report.positives["train"] > 0 and report.positives["validation"] > 0
    assert_tables_match_contract(spark, settings.lake, ("gold.training_sets",))
    good = next(m for m in report.models if m.kind == FAILURE)
    assert client.get_model_version_by_alias(name, CHALLENGER).version == good.version

    # The run carries parameters, metrics, signature, input example, datasets and lineage.
    run = client.get_run(good.run_id)
    assert run.data.params["horizon_hours"] == "24.0"
    assert {"holdout_recall", "holdout_mean_lead_time_h", "baseline_recall"} <= set(
        run.data.metrics
    )
    assert run.data.tags["lineage.gold.features.version"].isdigit()
    assert run.data.tags["lineage.silver.maintenance_events.version"].isdigit()
    assert run.data.tags["training_cutoff_ms"] == str(report.cutoff_ms)
    contexts = {i.tags[0].value for i in run.inputs.dataset_inputs}
    assert contexts == {"training", "validation"}
    source = json.loads(run.inputs.dataset_inputs[0].dataset.source)
    assert source["path"] == GOLD_TRAINING_SETS.path(settings.lake)
    from mlflow.models import get_model_info

    info = get_model_info(f"models:/{name}/{good.version}")
    assert [c.name for c in info.signature.inputs.inputs] == list(FEATURE_COLUMNS)
    assert info.saved_input_example_info is not None

    # The set is kept for audit under the training's id, and never looks past its label time.
    kept = (
        spark.read.format("delta").load(GOLD_TRAINING_SETS.path(settings.lake))
        .where(f"run_id = '{report.training_set_id}'").toPandas()
    )  # fmt: skip
    assert len(kept) == sum(report.rows.values())
    assert (kept["feature_time_ms"] <= kept["label_time_ms"]).all()
    assert (kept["staleness_ms"] <= settings.models.max_staleness_minutes * 60_000).all()

    # A useless challenger becomes champion only while there is no champion to beat.
    train = kept[kept["split"] == "train"]
    weak = _register_weak(settings, name, train)
    client.set_registered_model_alias(name, CHALLENGER, weak)
    first = promote(spark, settings, name, console=console)
    assert first.promoted and first.champion is None
    assert client.get_model_version_by_alias(name, CHAMPION).version == weak

    client.set_registered_model_alias(name, CHALLENGER, good.version)
    second = promote(spark, settings, name, console=console)
    assert second.promoted, second.reason
    assert second.challenger_holdout.recall > second.champion_holdout.recall
    assert client.get_model_version_by_alias(name, CHAMPION).version == good.version
    tags = client.get_model_version(name, good.version).tags
    assert tags["promotion.decision"] == "promoted"
    assert tags["promotion.champion_version"] == weak
    assert "spark_udf smoke scored" in tags["promotion.reason"]

    client.set_registered_model_alias(name, CHALLENGER, weak)
    third = promote(spark, settings, name, console=console)
    assert not third.promoted and "below the champion" in third.reason
    assert client.get_model_version_by_alias(name, CHAMPION).version == good.version
    assert client.get_model_version(name, weak).tags["promotion.decision"] == "rejected"

    assert rollback(settings, name, console=console) == weak
    assert client.get_model_version_by_alias(name, CHAMPION).version == weak
