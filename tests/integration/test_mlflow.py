"""MLflow: runs are tracked in the server's SQL store and artifacts land in MinIO through it."""

import uuid

import pytest

from plantlake.services.minio import s3_client

pytestmark = pytest.mark.integration


def test_run_metrics_and_artifacts_round_trip_through_the_server(settings, tmp_path, monkeypatch):
    import mlflow

    # The client talks only to the tracking server; the server proxies artifacts to MinIO.
    for var in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(settings.mlflow.uri)
    experiment = f"plantlake-test-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(experiment)
    note = tmp_path / "evidence.txt"
    note.write_text("bearing temperature trend")
    with mlflow.start_run() as run:
        mlflow.log_param("horizon_h", 24)
        mlflow.log_metric("recall", 0.8)
        mlflow.log_artifact(str(note))

    fetched = mlflow.get_run(run.info.run_id)
    assert fetched.data.params == {"horizon_h": "24"}
    assert fetched.data.metrics == {"recall": 0.8}
    assert fetched.info.artifact_uri.startswith("mlflow-artifacts:")
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, dst_path=str(tmp_path / "dl")
    )
    assert (tmp_path / "dl" / "evidence.txt").read_text() == "bearing temperature trend"
    assert downloaded

    objects = [o.object_name for o in s3_client(settings).list_objects(
        settings.mlflow.artifact_bucket, prefix="artifacts/", recursive=True)]  # fmt: skip
    assert any(name.endswith(f"{run.info.run_id}/artifacts/evidence.txt") for name in objects)
