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


def test_the_tracking_server_answers_only_with_plantlakes_credentials(settings):
    """Issue 13.9: without authentication any local process could point `@champion` at its own
    pickled code. The local server runs MLflow's basic auth; plantlake's clients log in."""
    import base64
    import urllib.error
    import urllib.request

    url = f"{settings.mlflow.uri}/api/2.0/mlflow/registered-models/search?max_results=1"

    def status(credentials: str | None) -> int:
        request = urllib.request.Request(url)
        if credentials:
            token = base64.b64encode(credentials.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as refused:
            return refused.code

    assert status(None) == 401
    assert status(f"{settings.mlflow.username}:not-the-password") == 401
    assert (
        status(f"{settings.mlflow.username}:{settings.mlflow.password.get_secret_value()}") == 200
    )


def test_mlflows_minio_user_reaches_its_bucket_and_nothing_else(settings):
    """MLflow stores artifacts with a MinIO user of its own, limited to the artifact bucket, not
    with the root keys that can rewrite the lake."""
    import io

    from minio import Minio
    from minio.error import S3Error

    host, port = settings.s3.host_port
    mlflow_user = Minio(f"{host}:{port}", access_key=settings.mlflow.s3_access_key,
                        secret_key=settings.mlflow.s3_secret_key.get_secret_value(),
                        secure=settings.s3.secure, region=settings.s3.region)  # fmt: skip
    assert settings.mlflow.s3_access_key != settings.s3.access_key
    name = f"tests/{uuid.uuid4().hex}.txt"
    mlflow_user.put_object(settings.mlflow.artifact_bucket, name, io.BytesIO(b"ok"), 2)
    mlflow_user.remove_object(settings.mlflow.artifact_bucket, name)
    lake_bucket = next(iter(settings.lake.buckets()))
    with pytest.raises(S3Error) as refused:
        mlflow_user.put_object(lake_bucket, name, io.BytesIO(b"no"), 2)
    assert refused.value.code == "AccessDenied"
    with pytest.raises(S3Error):
        list(mlflow_user.list_objects(lake_bucket, prefix="silver/"))
