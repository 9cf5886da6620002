"""Maintenance clusters each table as it is read, compacts and vacuums it, and skips absent
tables and the hot path's twin."""

import pytest

from plantlake.core.contracts import BRONZE_TELEMETRY, SILVER_QUARANTINE, TABLES
from plantlake.pipelines.jobs.table_upkeep import maintain_lake

pytestmark = pytest.mark.spark


def test_maintenance_clusters_compacts_and_skips_missing_tables(spark, own_lake):
    lake_settings = own_lake
    path = BRONZE_TELEMETRY.path(lake_settings.lake)
    for i in range(3):  # three small files to compact
        spark.createDataFrame([(f"p/l/a{i}", "t", float(i))], "asset string, sensor string, value double") \
            .write.format("delta").mode("append").save(path)  # fmt: skip
    results = {r.table: r for r in maintain_lake(spark, lake_settings)}
    assert set(results) == {t.name for t in TABLES}
    bronze = results["bronze.telemetry"]
    assert bronze.skipped is None and bronze.vacuumed
    assert bronze.clustered_by == ("asset",) and bronze.files_removed_by_optimize == 3
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert detail.clusteringColumns == ["asset"] and detail.numFiles == 1
    # Statistics for the contract's columns that this (older) table has.
    assert detail.properties["delta.dataSkippingStatsColumns"] == "asset,sensor"
    assert spark.read.format("delta").load(path).count() == 3
    assert results["silver.telemetry"].skipped == "table does not exist yet"
    assert results["gold.twin_state"].skipped.startswith(
        "its writer maintains it: plantlake pipeline run hot"
    )


def test_a_table_read_by_time_is_clustered_by_time_first_and_reclustered_when_that_changes(
    spark, own_lake
):
    path = SILVER_QUARANTINE.path(own_lake.lake)
    rows = [(f"p/l/a{i % 3}", i * 60_000) for i in range(6)]
    spark.createDataFrame(rows, "asset string, event_time_ms long").write.format("delta").save(path)
    spark.sql(f"ALTER TABLE delta.`{path}` CLUSTER BY (asset)")  # as an earlier release left it
    results = {r.table: r for r in maintain_lake(spark, own_lake)}
    assert results["silver.quarantine"].clustered_by == ("event_time_ms", "asset")
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert detail.clusteringColumns == ["event_time_ms", "asset"]
