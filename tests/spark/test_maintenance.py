"""Maintenance clusters by asset, compacts and vacuums the lake's tables, and skips absent ones."""

import pytest

from plantlake.contracts import BRONZE_TELEMETRY, TABLES
from plantlake.pipelines.maintenance import maintain_lake

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
    assert bronze.clustered_by == "asset" and bronze.files_removed_by_optimize == 3
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert detail.clusteringColumns == ["asset"] and detail.numFiles == 1
    assert spark.read.format("delta").load(path).count() == 3
    assert results["gold.twin_state"].skipped == "table does not exist yet"
