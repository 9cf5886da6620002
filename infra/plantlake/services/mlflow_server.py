"""The MLflow tracking server: SQLite backend store, artifacts proxied to MinIO, basic auth on."""

from __future__ import annotations

import base64
import configparser
import io
import sys
import urllib.error
import urllib.request
from pathlib import Path

from plantlake.services.base import Service
from plantlake.services.process import Launch


def s3_env(settings) -> dict[str, str]:
    """Environment the server's S3 client (boto3) needs: MLflow's own MinIO user when there is
    one, else the lake's keys (an S3 plantlake does not manage)."""
    m, s3 = settings.mlflow, settings.s3
    own = bool(m.s3_access_key)
    return {
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": m.s3_access_key if own else s3.access_key,
        "AWS_SECRET_ACCESS_KEY": (m.s3_secret_key if own else s3.secret_key).get_secret_value(),
        "AWS_DEFAULT_REGION": s3.region,
    }


def auth_config(settings, data_dir: Path) -> str:
    """The basic-auth app's ini: plantlake's user is the admin; any other user MLflow is told
    about starts with no permission. The admin password is not in it (the launch environment
    carries it, and MLflow reads it only to create the admin in an empty user store)."""
    config = configparser.ConfigParser()
    config["mlflow"] = {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": f"sqlite:///{data_dir / 'basic_auth.db'}",
        "admin_username": settings.mlflow.username,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access": "false",
        # Each request checks a PBKDF2 hash; scoring asks the registry every micro-batch.
        "auth_cache_ttl_seconds": "60",
    }
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def basic_auth_header(settings) -> str:
    m = settings.mlflow
    token = f"{m.username}:{m.password.get_secret_value()}".encode()
    return "Basic " + base64.b64encode(token).decode()


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

    @property
    def auth_config_path(self) -> Path:
        return self.data_dir / "basic_auth.ini"

    def prepare(self, report) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.auth_config_path.write_text(auth_config(self.settings, self.data_dir))

    def launch(self) -> Launch:
        m = self.settings.mlflow
        return self._launch(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--app-name",
                "basic-auth",
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
            env=s3_env(self.settings)
            | {
                "MLFLOW_AUTH_CONFIG_PATH": str(self.auth_config_path),
                "MLFLOW_AUTH_ADMIN_PASSWORD": m.password.get_secret_value(),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": m.server_secret_key.get_secret_value(),
            },  # fmt: skip
        )

    def probe(self) -> str:
        uri = self.settings.mlflow.uri
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            body = response.read().decode().strip()
        if body != "OK":
            raise RuntimeError(f"health answered {body!r}")
        request = urllib.request.Request(
            f"{uri}/api/2.0/mlflow/experiments/search?max_results=1",
            headers={"Authorization": basic_auth_header(self.settings)},
        )
        try:
            with urllib.request.urlopen(request, timeout=5):
                pass
        except urllib.error.HTTPError as refused:
            if refused.code in (401, 403):
                raise RuntimeError(
                    f"the server refuses user {self.settings.mlflow.username!r} with the "
                    f"password in the settings (HTTP {refused.code}); its user store "
                    f"{self.data_dir / 'basic_auth.db'} was made with another password"
                ) from None
            raise
        return "tracking server OK, basic auth"
