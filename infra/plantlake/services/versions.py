"""Pinned versions of everything plantlake installs outside Python, read from pyproject.toml.

`infra/pyproject.toml` is a symbolic link to the project's own, so the pins have one home and
still ship as package data: an installed (not editable) plantlake reads its copy.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from plantlake.core.errors import ConfigError

PYPROJECT = Path(__file__).parent / "pyproject.toml"


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
    """The pinned versions of this installation."""
    if not PYPROJECT.exists():
        raise ConfigError(
            f"Cannot find {PYPROJECT}, the pins plantlake ships with.",
            hint="Reinstall plantlake (`pip install .` or `pip install -e .` from the clone).",
        )
    return parse_versions(tomllib.loads(PYPROJECT.read_text()))
