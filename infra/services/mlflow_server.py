"""The MLflow tracking server: SQLite backend store, artifacts proxied to MinIO."""

from __future__ import annotations

import sys
import urllib.request

from plantlake.services.base import Service
from plantlake.services.process import Launch


def s3_env(settings) -> dict[str, str]:
    """Environment the S3 clients of MLflow (boto3) need to reach the lake's S3."""
    return {
        "MLFLOW_S3_ENDPOINT_URL": settings.s3.endpoint,
        "AWS_ACCESS_KEY_ID": settings.s3.access_key,
        "AWS_SECRET_ACCESS_KEY": settings.s3.secret_key.get_secret_value(),
        "AWS_DEFAULT_REGION": settings.s3.region,
    }


class MlflowService(Service):
    name = "mlflow"
    port_setting = "PLANTLAKE_MLFLOW__PORT"
    # The first start migrates the SQLite schema, which takes a while on a slow disk.
    start_timeout = 180.0

    @property
    def managed(self) -> bool:
        return self.settings.mlflow.managed

    def endpoint(self) -> str:
        return self.settings.mlflow.uri

    def ports(self) -> list[tuple[str, int]]:
        return [(self.settings.mlflow.host, self.settings.mlflow.port)]

    def prepare(self, report) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def launch(self) -> Launch:
        m = self.settings.mlflow
        return self._launch(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.data_dir / 'mlflow.db'}",
                "--artifacts-destination",
                f"s3://{m.artifact_bucket}/artifacts",
                "--host",
                m.host,
                "--port",
                str(m.port),
                "--workers",
                "1",
            ],  # fmt: skip
            env=s3_env(self.settings),
        )

    def probe(self) -> str:
        with urllib.request.urlopen(f"{self.settings.mlflow.uri}/health", timeout=2) as response:
            body = response.read().decode().strip()
        if body != "OK":
            raise RuntimeError(f"health answered {body!r}")
        return "tracking server OK"
