"""Table maintenance: cluster, compact and vacuum every lake table Spark writes (all layers).

Liquid clustering on each table's `cluster_by` columns (the contract: time first where jobs read
by a time range, else asset) is switched on, or changed, for each existing table, and OPTIMIZE
then clusters incrementally; it cannot be combined with partitioning or ZORDER, and no plantlake
table is partitioned. A table whose contract names `stats_columns` keeps Delta statistics for
those alone (set when its writer creates it; here for older tables). gold.twin_state is left
alone: its only writer is the hot path, through delta-rs, which vacuums it itself; a second
writer from Spark would be unsafe on S3. VACUUM keeps `retention_hours` of history (default
7 days), so time travel and readers that are a week behind keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

from plantlake.adapters.delta import read_delta, table_exists
from plantlake.adapters.spark import first_row
from plantlake.core.config import Settings
from plantlake.core.contracts import TABLES, TableRef

DEFAULT_RETENTION_HOURS = 168


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    clustered_by: tuple[str, ...] | None
    files_removed_by_optimize: int
    vacuumed: bool
    skipped: str | None = None


def _exists(spark: SparkSession, path: str) -> bool:

    return table_exists(spark, path)


def maintain_table(
    spark: SparkSession, ref: TableRef, path: str, *, retention_hours: int
) -> MaintenanceResult:
    """OPTIMIZE (clustered by the contract's columns) and VACUUM one table."""
    if not ref.cluster_by:
        return MaintenanceResult(
            ref.name, None, 0, False, skipped=f"its writer maintains it: {ref.writer}"
        )
    if not _exists(spark, path):
        return MaintenanceResult(ref.name, None, 0, False, skipped="table does not exist yet")
    columns = set(read_delta(spark, path).columns)
    cluster = tuple(c for c in ref.cluster_by if c in columns) or None
    detail = first_row(spark.sql(f"DESCRIBE DETAIL delta.`{path}`"))
    wanted = ref.properties(columns)
    if any(detail.properties.get(key) != value for key, value in wanted.items()):
        assignments = ", ".join(f"'{key}' = '{value}'" for key, value in wanted.items())
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")
    if cluster and tuple(detail.clusteringColumns or ()) != cluster:
        spark.sql(f"ALTER TABLE delta.`{path}` CLUSTER BY ({', '.join(cluster)})")
    metrics = first_row(spark.sql(f"OPTIMIZE delta.`{path}`")).metrics
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
