"""Reference tables: reference.units from the unit tables, and reference.asset_registry loaded
from a site's registry entries by MERGE, so history stays (silver layer, job).

The registry's key is (asset, sensor, valid_from). An entry with a key the table holds replaces
that row (a remount ends the old interval by giving it a valid_to); a new key is a new row; a
row the entries do not mention stays. Before anything is written, the table as it would be is
checked: no two intervals of one sensor may overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import SparkSession

from plantlake.adapters.delta import add_missing_columns, read_delta, table_exists, upsert
from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import REFERENCE_ASSET_REGISTRY, REFERENCE_UNITS
from plantlake.core.registry_entries import (
    RegistryEntry,
    RegistryFileError,
    entries_from_rows,
    entry_rows,
    merge_conflicts,
)
from plantlake.pipelines.transforms.asset_registry import REGISTRY_SCHEMA
from plantlake.pipelines.transforms.unit_conversion import UNITS_SCHEMA, unit_rows


@dataclass(frozen=True)
class RegistryLoad:
    """What a load did to reference.asset_registry: rows added, rows changed, rows as they were."""

    inserted: int
    updated: int
    unchanged: int


def load_units(spark: SparkSession, lake: LakeSettings) -> int:
    """Overwrite reference.units from the unit tables; returns the rows written."""
    rows = unit_rows()
    spark.createDataFrame(rows, UNITS_SCHEMA).write.format("delta").mode("overwrite").option(
        "overwriteSchema", "true"
    ).save(REFERENCE_UNITS.path(lake))
    return len(rows)


def read_registry(spark: SparkSession, lake: LakeSettings) -> list[RegistryEntry]:
    """The rows of reference.asset_registry as entries (none when the table is missing)."""
    path = REFERENCE_ASSET_REGISTRY.path(lake)
    if not table_exists(spark, path):
        return []
    return entries_from_rows(row.asDict() for row in read_delta(spark, path).collect())


def load_registry(
    spark: SparkSession,
    lake: LakeSettings,
    entries: Sequence[RegistryEntry],
    *,
    source: str,
    lines: Sequence[int] | None = None,
) -> RegistryLoad:
    """MERGE `entries` into reference.asset_registry (see the module docstring).

    `lines` are the entries' lines in `source` (for the error message; default 1, 2, ...).
    Raises RegistryFileError, writing nothing, when an entry's interval would overlap a row the
    table keeps.
    """
    current = read_registry(spark, lake)
    located = list(zip(lines or range(1, len(entries) + 1), entries, strict=True))
    problems = merge_conflicts(current, located)
    if problems:
        raise RegistryFileError(source, problems)
    by_key = {entry.key: entry for entry in current}
    updated = sum(1 for e in entries if e.key in by_key and by_key[e.key] != e)
    inserted = sum(1 for e in entries if e.key not in by_key)
    path = REFERENCE_ASSET_REGISTRY.path(lake)
    if table_exists(spark, path):
        add_missing_columns(spark, path, REFERENCE_ASSET_REGISTRY.columns)
    rows = spark.createDataFrame(entry_rows(entries), REGISTRY_SCHEMA)
    upsert(rows, path, on=REFERENCE_ASSET_REGISTRY.merge_on(), app_id=None)
    return RegistryLoad(inserted, updated, len(current) - updated)


def load_reference(
    spark: SparkSession, settings: Settings, entries: Sequence[RegistryEntry]
) -> dict[str, int]:
    """reference.units rewritten and `entries` merged into reference.asset_registry; returns the
    rows this load wrote to each table."""
    units = load_units(spark, settings.lake)
    load_registry(spark, settings.lake, entries, source="the registry entries")
    return {REFERENCE_UNITS.name: units, REFERENCE_ASSET_REGISTRY.name: len(entries)}
