"""Streaming queries started in a scheduler pool run their micro-batches in it."""

import pytest

from plantlake.adapters.spark import scheduler_pool

pytestmark = pytest.mark.spark


def test_foreach_batch_runs_in_the_pool_of_the_thread_that_started_the_query(spark, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.json").write_text('{"n": 1}\n')
    seen = []
    source = spark.readStream.schema("n int").json(str(tmp_path / "in"))
    writer = (
        source.writeStream.option("checkpointLocation", str(tmp_path / "chk"))
        .trigger(availableNow=True)
        .foreachBatch(
            lambda batch, _: seen.append(
                batch.sparkSession.sparkContext.getLocalProperty("spark.scheduler.pool")
            )
        )
    )
    with scheduler_pool(spark, "bronze"):
        query = writer.start()
    query.awaitTermination()
    assert seen == ["bronze"]
    assert spark.sparkContext.getLocalProperty("spark.scheduler.pool") is None
    assert spark.conf.get("spark.scheduler.mode") == "FAIR"
