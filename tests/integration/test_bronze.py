"""Bronze end to end: Kafka to Delta on MinIO, malformed records to dead letter, reruns add nothing."""

import pytest
from pyspark.sql import functions as F

from plantlake.adapters.kafka import produce, produce_raw
from plantlake.app.demo import demo_readings
from plantlake.core.contracts import BRONZE_DEAD_LETTER, BRONZE_TELEMETRY
from plantlake.core.topics import topic
from plantlake.pipelines.jobs import bronze

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def test_bronze_lands_every_record_once_with_lineage(spark, isolated_kafka):
    isolated = isolated_kafka
    name = topic("telemetry").name(isolated.kafka.topic_prefix)
    records = list(demo_readings("b", count=200, start_ms=1_767_225_600_000))
    produce(isolated.kafka, name, records)
    produce_raw(isolated.kafka, name, b"plant1/x", b"{broken")

    bronze.run(spark, isolated, once=True).awaitTermination()
    landed = spark.read.format("delta").load(BRONZE_TELEMETRY.path(isolated.lake))
    dead = spark.read.format("delta").load(BRONZE_DEAD_LETTER.path(isolated.lake))
    assert landed.count() == 200
    lineage = landed.select("kafka_partition", "kafka_offset").distinct().count()
    assert lineage == 200
    assert landed.where(F.col("event_time").isNull() | F.col("ingest_time").isNull()).count() == 0
    [bad] = dead.collect()
    assert bad.raw_value == b"{broken" and "not a JSON object" in bad.reason

    # A second run with nothing new adds nothing; new records are appended exactly once.
    bronze.run(spark, isolated, once=True).awaitTermination()
    assert landed.count() == 200
    produce(isolated.kafka, name, list(demo_readings("c", count=10, start_ms=0)))
    bronze.run(spark, isolated, once=True).awaitTermination()
    assert spark.read.format("delta").load(BRONZE_TELEMETRY.path(isolated.lake)).count() == 210
