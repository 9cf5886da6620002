"""Integration tier: the real services, started (idempotently) by `plantlake up` before any test."""

import uuid

import pytest
from rich.console import Console

from plantlake.app.local_secrets import ensure_local_secrets
from plantlake.core.config import LakeSettings, load_settings
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs.reference import load_reference
from plantlake.simulator.registry import plant_registry_entries


@pytest.fixture(scope="session")
def settings():
    from plantlake.services import stack

    loaded = ensure_local_secrets(load_settings())
    healths = stack.up(loaded, (), Console(stderr=True))
    down = [h.name for h in healths if not h.up]
    if down:
        pytest.fail(f"services down after `plantlake up`: {down}")
    from plantlake.adapters.mlflow_tracking import use_tracking_server

    use_tracking_server(loaded)  # the tracking server runs basic auth: log this process in
    return loaded


@pytest.fixture
def scratch_lake(settings):
    """Settings whose lake lives under a fresh prefix of the real bucket, for one test."""
    prefix = f"s3a://plantlake/tests/{uuid.uuid4().hex[:10]}"
    return settings.model_copy(
        update={"lake": LakeSettings(root=prefix, checkpoint_root=f"{prefix}/_checkpoints")}
    )


@pytest.fixture(scope="session")
def spark(settings):
    from plantlake.adapters.spark import get_spark

    session = get_spark(settings, app_name="plantlake-integration", master="local[2]")
    yield session
    session.stop()


@pytest.fixture
def isolated_kafka(scratch_lake):
    """Settings with their own freshly created topics (and own lake prefix), deleted afterwards."""
    from plantlake.services.kafka import delete_prefixed_topics, ensure_topics

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    isolated = scratch_lake.model_copy(
        update={"kafka": scratch_lake.kafka.model_copy(update={"topic_prefix": prefix})}
    )
    ensure_topics(isolated, lambda _: None)
    yield isolated
    delete_prefixed_topics(isolated)


@pytest.fixture(scope="session")
def ml_lake(spark, settings, tmp_path_factory):
    """Settings whose lake holds a month of gold.features and silver.maintenance_events."""
    from tests.integration.ml_lake import build_ml_lake

    return build_ml_lake(spark, settings, tmp_path_factory.mktemp("ml-lake"))


@pytest.fixture
def ml_models(ml_lake):
    """ml_lake settings with registered model names of their own, deleted afterwards."""
    import mlflow
    from mlflow.tracking import MlflowClient

    tag = uuid.uuid4().hex[:8]
    names = {"failure_model": f"test-{tag}-failure", "anomaly_model": f"test-{tag}-anomaly"}
    yield ml_lake.model_copy(update={"models": ml_lake.models.model_copy(update=names)})
    mlflow.set_tracking_uri(ml_lake.mlflow.uri)
    client = MlflowClient()
    for name in names.values():
        if client.search_registered_models(filter_string=f"name = '{name}'"):
            client.delete_registered_model(name)


@pytest.fixture
def hot_lake(isolated_kafka, spark):
    """Isolated topics and lake with the simulated plant's reference tables, and a hot-path
    consumer group of its own."""
    from plantlake.simulator.plant import build_plant

    load_reference(
        spark,
        isolated_kafka,
        plant_registry_entries(
            build_plant(isolated_kafka.simulator.seed), default_window_features()
        ),
    )
    group = isolated_kafka.hot_path.model_copy(update={"group_id": f"hot-{uuid.uuid4().hex[:8]}"})
    return isolated_kafka.model_copy(update={"hot_path": group})
