"""Table maintenance: cluster by asset, compact, and vacuum every lake table (ops for all layers).

Liquid clustering (`CLUSTER BY asset`) is switched on for each existing table the first time and
OPTIMIZE then clusters incrementally; it cannot be combined with partitioning or ZORDER, and no
plantlake table is partitioned. VACUUM keeps `retention_hours` of history (default 7 days), so
time travel and readers that are a week behind keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

from plantlake.config import Settings
from plantlake.contracts import TABLES, TableRef

DEFAULT_RETENTION_HOURS = 168


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    clustered_by: str | None
    files_removed_by_optimize: int
    vacuumed: bool
    skipped: str | None = None


def _exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def maintain_table(
    spark: SparkSession, ref: TableRef, path: str, *, retention_hours: int
) -> MaintenanceResult:
    """OPTIMIZE (clustered by asset where the table has one) and VACUUM one table."""
    if not _exists(spark, path):
        return MaintenanceResult(ref.name, None, 0, False, skipped="table does not exist yet")
    columns = set(spark.read.format("delta").load(path).columns)
    cluster = "asset" if "asset" in columns else None
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    if cluster and not (detail.clusteringColumns or []):
        spark.sql(f"ALTER TABLE delta.`{path}` CLUSTER BY ({cluster})")
    metrics = spark.sql(f"OPTIMIZE delta.`{path}`").first().metrics
    spark.sql(f"VACUUM delta.`{path}` RETAIN {retention_hours} HOURS")
    return MaintenanceResult(ref.name, cluster, int(metrics.numFilesRemoved), True)


def maintain_lake(
    spark: SparkSession, settings: Settings, *, retention_hours: int = DEFAULT_RETENTION_HOURS
) -> list[MaintenanceResult]:
    """Maintain every table of the lake contract (one at a time: each OPTIMIZE is a full job)."""
    return [
        maintain_table(spark, ref, ref.path(settings.lake), retention_hours=retention_hours)
        for ref in TABLES
    ]
