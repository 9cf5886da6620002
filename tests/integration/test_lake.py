"""The lake: Spark writes Delta to MinIO through the session factory; delta-rs reads the same rows."""

import pytest
from deltalake import DeltaTable

from plantlake.services.minio import delta_rs_options

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def test_delta_on_minio_round_trip_and_independent_reader(spark, scratch_lake):
    path = scratch_lake.lake.table_path("test", "readings")
    rows = [(f"plant1/line1/asset-{i % 3}", "temperature", 20.0 + i) for i in range(30)]
    df = spark.createDataFrame(rows, "asset string, sensor string, value double")
    df.write.format("delta").mode("overwrite").save(path)
    df.where("value > 40").write.format("delta").mode("append").save(path)

    back = spark.read.format("delta").load(path)
    expected = sorted(rows + [r for r in rows if r[2] > 40])
    assert sorted(tuple(r) for r in back.collect()) == expected

    table = DeltaTable(
        path.replace("s3a://", "s3://"), storage_options=delta_rs_options(scratch_lake)
    )
    assert table.version() == 1
    other = table.to_pandas()
    assert sorted(other.itertuples(index=False, name=None)) == expected
