"""Pinned versions of everything plantlake installs outside Python, read from pyproject.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from plantlake.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = PROJECT_ROOT / "pyproject.toml"


@dataclass(frozen=True)
class Versions:
    spark: str
    delta: str
    hadoop: str
    awssdk: str
    kafka: str
    kafka_log4j: str
    minio: str


def parse_versions(pyproject: dict) -> Versions:
    """Unpack `[tool.plantlake.versions]` from a parsed pyproject mapping."""
    try:
        table = pyproject["tool"]["plantlake"]["versions"]
    except KeyError as exc:
        raise ConfigError("pyproject.toml has no [tool.plantlake.versions] table.") from exc
    names = {f.name for f in fields(Versions)}
    missing = names - table.keys()
    unknown = table.keys() - names
    if missing or unknown:
        raise ConfigError(
            f"[tool.plantlake.versions] in pyproject.toml: missing {sorted(missing)}, "
            f"unknown {sorted(unknown)}."
        )
    return Versions(**{k: str(v) for k, v in table.items()})


@cache
def versions() -> Versions:
    """The pinned versions of this checkout."""
    if not PYPROJECT.exists():
        raise ConfigError(
            f"Cannot find {PYPROJECT}: plantlake runs from a checkout of its repository.",
            hint="Install it with `pip install -e .` from the clone.",
        )
    return parse_versions(tomllib.loads(PYPROJECT.read_text()))
