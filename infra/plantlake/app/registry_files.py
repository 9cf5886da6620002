"""Registry files in and out of the lake: `plantlake reference import/export/load` (app layer).

A site's registry is a CSV or YAML file (plantlake.core.registry_entries); the simulated plant
is written to the same kind of file and imported the same way, so the demo takes a site's path.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from plantlake.core.config import Settings
from plantlake.core.errors import ConfigError
from plantlake.core.registry_entries import (
    RegistryEntry,
    located_registry_csv,
    located_registry_yaml,
    registry_csv,
    registry_yaml,
)
from plantlake.pipelines.jobs.reference import (
    RegistryLoad,
    load_registry,
    load_units,
    read_registry,
)

_FORMATS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}


def registry_format(path: Path, given: str | None = None) -> str:
    """ "csv" or "yaml": `given`, else from the file's suffix; ConfigError when neither says."""
    kind = given or _FORMATS.get(path.suffix.lower())
    if kind not in ("csv", "yaml"):
        raise ConfigError(f"Cannot tell the format of {path}: name it .csv, .yaml or .yml, or "
                          "use --csv / --yaml.")  # fmt: skip
    return kind


def read_registry_file(path: Path, kind: str) -> list[tuple[int, RegistryEntry]]:
    """(line, entry) of a registry file; RegistryFileError names every bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the registry file {path}: {exc}") from exc
    parse = located_registry_csv if kind == "csv" else located_registry_yaml
    return parse(text, source=str(path))


def write_registry_file(path: Path, entries: list[RegistryEntry], kind: str) -> None:
    """Write entries in the import format, whole or not at all."""
    text = registry_csv(entries) if kind == "csv" else registry_yaml(entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def import_registry_file(
    spark: SparkSession, settings: Settings, path: Path, kind: str
) -> tuple[int, RegistryLoad]:
    """Validate a registry file, then MERGE it into reference.asset_registry (and rewrite
    reference.units, which silver reads beside it). Returns (entries in the file, what changed)."""
    located = read_registry_file(path, kind)
    lines = [line for line, _ in located]
    entries = [entry for _, entry in located]
    load_units(spark, settings.lake)
    load = load_registry(spark, settings.lake, entries, source=str(path), lines=lines)
    return len(entries), load


def export_registry_file(spark: SparkSession, settings: Settings, path: Path, kind: str) -> int:
    """Write reference.asset_registry to `path`; returns the entries written."""
    entries = read_registry(spark, settings.lake)
    write_registry_file(path, entries, kind)
    return len(entries)


def simulated_plant_file(settings: Settings) -> Path:
    """Where `plantlake reference load` writes the simulated plant's registry before importing it."""
    return settings.home / "simulated-plant" / "registry.csv"


def load_simulated_plant(
    spark: SparkSession, settings: Settings, entries: list[RegistryEntry]
) -> tuple[Path, int, RegistryLoad]:
    """Write the simulated plant's registry file and import it, as a site imports its own."""
    path = simulated_plant_file(settings)
    write_registry_file(path, entries, "csv")
    return (path, *import_registry_file(spark, settings, path, "csv"))
