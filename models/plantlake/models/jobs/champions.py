"""Which model versions serve (models layer, MLflow registry adapter): the champions.

The models served are the versions the alias `champion` points at in the MLflow registry
(`settings.models.failure_model` and `anomaly_model`); each version carries its alert policy as
tags (`kind`, `alert_threshold`, `horizon_hours`), and only a version `plantlake models promote`
tagged as promoted is loaded: a model is a pickle, that is code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from plantlake.adapters.mlflow_tracking import use_tracking_server
from plantlake.core.config import Settings
from plantlake.core.errors import ContractError, PlantlakeError, SourceError

CHAMPION = "champion"
KINDS = ("failure", "anomaly")


class Champion(NamedTuple):
    """The model version serving under the alias `champion`: `models:/<name>/<version>`."""

    uri: str
    version: str
    tags: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.uri.removeprefix("models:/").rsplit("/", 1)[0]

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass(frozen=True)
class Policy:
    """A champion's alert policy, from its version tags."""

    kind: str
    threshold: float
    horizon_hours: float


def registry_client(settings: Settings):
    # spark_udf resolves `models:/` URIs through the process-wide tracking server, set here.
    return use_tracking_server(settings)


def alias_version(settings: Settings, name: str, alias: str):
    """The ModelVersion `name@alias`, or None when the model or the alias does not exist.
    Raises SourceError when the registry cannot be asked."""
    from mlflow.exceptions import MlflowException

    client = registry_client(settings)
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise SourceError(
            f"MLflow registry at {settings.mlflow.uri}: could not look up {name}@{alias}: {exc}",
            hint="Check `plantlake status` for the mlflow service.",
        ) from exc
    except Exception as exc:  # connection refused, timeouts: requests' own errors
        raise SourceError(
            f"MLflow registry at {settings.mlflow.uri} did not answer for {name}@{alias}: {exc}",
            hint="Check `plantlake status` for the mlflow service.",
        ) from exc


class UntrustedChampion(PlantlakeError):
    """The champion alias points at a version `plantlake models promote` did not promote."""

    code = "untrusted-champion"


# The tag `promote` sets on the version it promotes (models.promotion); models are pickles, so
# scoring loads only a version that went through promotion's checks.
PROMOTED_TAG, PROMOTED = "promotion.decision", "promoted"


def champion(settings: Settings, name: str) -> Champion | None:
    """The registered model `name`'s champion version, or None when the model or the alias does
    not exist (nothing to serve yet). Raises SourceError when the registry cannot be asked, and
    UntrustedChampion when the alias was moved to a version promotion did not pass."""
    version = alias_version(settings, name, CHAMPION)
    if version is None:
        return None
    tags = dict(version.tags)
    if tags.get(PROMOTED_TAG) != PROMOTED:
        raise UntrustedChampion(
            f"{name}@{CHAMPION} points at v{version.version}, which `plantlake models promote` "
            f"did not promote (tag {PROMOTED_TAG} is {tags.get(PROMOTED_TAG)!r}); it is not "
            "loaded: a model is code.",
            hint=f"Promote it with `plantlake models promote {name}`, or roll back with "
            f"`plantlake models rollback {name}`.",
        )
    return Champion(f"models:/{name}/{version.version}", str(version.version), tags)


def champions(settings: Settings) -> list[Champion]:
    """The champions of the failure and the anomaly model that exist."""
    names = (settings.models.failure_model, settings.models.anomaly_model)
    return [found for name in names if (found := champion(settings, name)) is not None]


def policy(found: Champion, *, default_horizon_hours: float) -> Policy:
    """The alert policy in a champion's version tags; ContractError when it is missing."""
    tags = found.tags
    kind = tags.get("kind")
    try:
        threshold = float(tags["alert_threshold"])
    except (KeyError, ValueError) as exc:
        raise ContractError(
            f"{found.label} (the {CHAMPION}) has no numeric version tag alert_threshold "
            f"(got {tags.get('alert_threshold')!r}).",
            hint="Register models with `plantlake models train`, which tags them, or set the tag.",
        ) from exc
    if kind not in KINDS:
        raise ContractError(
            f"{found.label} (the {CHAMPION}) has version tag kind={kind!r}, not one of {KINDS}.",
            hint="Register models with `plantlake models train`, which tags them, or set the tag.",
        )
    horizon = tags.get("horizon_hours")
    return Policy(kind, threshold, float(horizon) if horizon else default_horizon_hours)
