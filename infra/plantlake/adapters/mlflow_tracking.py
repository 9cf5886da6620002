"""The MLflow tracking server as plantlake's clients reach it (models layer adapter).

The managed server runs MLflow's basic auth, and MLflow's client reads credentials only from
the environment (or a per-user file outside $PLANTLAKE_HOME), so connecting puts the settings'
URI, user and password there. Processes this one starts (Spark's Python workers, jobs) inherit
them. Artifacts are proxied by the server (mlflow-artifacts:), so no S3 key is needed here.
"""

from __future__ import annotations

import os

from plantlake.core.config import Settings


def tracking_env(settings: Settings) -> dict[str, str]:
    m = settings.mlflow
    env = {"MLFLOW_TRACKING_URI": m.uri, "MLFLOW_TRACKING_USERNAME": m.username}
    if m.password.get_secret_value():
        env["MLFLOW_TRACKING_PASSWORD"] = m.password.get_secret_value()
    return env


def use_tracking_server(settings: Settings):
    """Point this process's MLflow at the settings' server, logged in; returns a client."""
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.update(tracking_env(settings))
    # Download bars of every model load drown the report in logs and CI.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(settings.mlflow.uri)
    return MlflowClient(tracking_uri=settings.mlflow.uri)


def fail_fast_requests() -> None:
    """Let an unreachable tracking server fail a request within seconds (MLflow's defaults
    retry for minutes); a setting the caller already made wins."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
