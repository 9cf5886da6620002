"""Lake tables are addressable by name from a plantlake session."""

import pytest

from plantlake.adapters.spark import register_lake_tables
from plantlake.core.contracts import GOLD_TWIN_STATE, SILVER_QUARANTINE

pytestmark = pytest.mark.spark


def test_existing_tables_are_registered_by_layer_and_name(spark, own_lake):
    lake_settings = own_lake
    spark.sql("DROP TABLE IF EXISTS silver.quarantine")
    path = SILVER_QUARANTINE.path(lake_settings.lake)
    spark.createDataFrame([("p/l/a", "open")], "asset string, review_status string").write.format(
        "delta"
    ).mode("overwrite").save(path)
    names = register_lake_tables(spark, lake_settings)
    assert SILVER_QUARANTINE.name in names
    assert GOLD_TWIN_STATE.name not in names  # not written in this lake
    assert spark.table("silver.quarantine").where("review_status = 'open'").count() == 1
    assert register_lake_tables(spark, lake_settings) == names  # idempotent
