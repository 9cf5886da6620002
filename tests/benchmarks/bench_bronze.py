"""Benchmark: bronze throughput on local[2], Kafka and MinIO on this machine, against a bare
Spark parse-and-write of the same records in the same run.

Run with the stack up: `.venv/bin/python tests/benchmarks/bench_bronze.py [--records 1000000]
[--features-share 0.1]`. With a features share, that fraction of the records are edge window
features on their own topic (a plant whose DAQ runs), which bronze lands in a second pass.

  bronze - the bronze job (availableNow): Kafka source, parse and validate, split into
           telemetry / dead letter, idempotent Delta appends to MinIO, checkpoint on local disk
           (the default; `--checkpoint-root s3a://...` for one on MinIO)
  bare   - spark.read from the same Kafka topic, from_json, one Delta append to MinIO
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid

from plantlake.adapters.kafka import produce
from plantlake.adapters.spark import get_spark
from plantlake.app.demo import demo_readings
from plantlake.core.config import LakeSettings, load_settings
from plantlake.core.contracts import BRONZE_EDGE_FEATURES, BRONZE_TELEMETRY, TELEMETRY_RECORD
from plantlake.core.topics import TOPICS, topic
from plantlake.pipelines.jobs import bronze
from plantlake.pipelines.transforms.schemas import record_schema
from plantlake.services.kafka import admin_client, ensure_topics


def _bare(spark, settings, topic_name: str, path: str) -> None:
    """spark.read from the topic, from_json, one Delta append: the floor bronze is held to."""
    from pyspark.sql import functions as F

    raw = (spark.read.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
           .option("subscribe", topic_name).option("startingOffsets", "earliest").load())  # fmt: skip
    # `topic_name` may list several topics (comma-separated): one parse and one append for all.
    parsed = raw.select(
        F.from_json(F.col("value").cast("string"), record_schema(TELEMETRY_RECORD)).alias("r")
    ).select("r.*")
    parsed.write.format("delta").mode("append").save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--features-share", type=float, default=0.0,
        help="fraction of the records sent as edge window features (0 to 1)",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-root", help="where bronze checkpoints (default: a local temp folder)"
    )
    args = parser.parse_args()
    base = load_settings()
    run = uuid.uuid4().hex[:8]
    checkpoints = args.checkpoint_root or f"file://{tempfile.mkdtemp(prefix='bench-bronze-')}"
    lake = LakeSettings(root=f"s3a://plantlake/bench/{run}", checkpoint_root=checkpoints)
    settings = base.model_copy(
        update={
            "lake": lake,
            "kafka": base.kafka.model_copy(update={"topic_prefix": f"bench-{run}"}),
        }
    )
    ensure_topics(settings, lambda _: None)
    name = topic("telemetry").name(settings.kafka.topic_prefix)
    features_name = topic("edge_features").name(settings.kafka.topic_prefix)
    features = int(args.records * args.features_share)
    began = time.perf_counter()
    produce(
        settings.kafka,
        name,
        demo_readings(run, count=args.records - features, start_ms=1_767_225_600_000),
        timeout=600,
    )
    if features:
        window_features = (
            r | {"sensor": "vibration.band_50_200", "unit": None}
            for r in demo_readings(f"{run}-f", count=features, start_ms=1_767_225_600_000)
        )
        produce(settings.kafka, features_name, window_features, timeout=600)
    both = f"{name},{features_name}" if features else name
    print(f"produced {args.records:,} records in {time.perf_counter() - began:.1f}s")
    spark = get_spark(settings, app_name="plantlake-bench-bronze")
    try:
        # The same JVM warmth for both: a bare pass first (not counted), as bronze runs first.
        began = time.perf_counter()
        _bare(spark, settings, both, f"{lake.root}/bare/warm-up")
        print(f"warm-up (bare, not counted): {time.perf_counter() - began:.1f}s")

        began = time.perf_counter()
        bronze.run(spark, settings, once=True).awaitTermination()
        bronze_s = time.perf_counter() - began
        landed = sum(
            spark.read.format("delta").load(ref.path(lake)).count()
            for ref in (BRONZE_TELEMETRY, BRONZE_EDGE_FEATURES)
        )

        began = time.perf_counter()
        _bare(spark, settings, both, f"{lake.root}/bare/telemetry")
        bare_s = time.perf_counter() - began
    finally:
        spark.stop()
        admin = admin_client(settings)
        for future in admin.delete_topics(
            [t.name(settings.kafka.topic_prefix) for t in TOPICS]
        ).values():
            future.result()
    print(f"\nBronze throughput, {args.records:,} records ({features:,} of them edge features), "
          "local[2], Kafka + MinIO on this machine")  # fmt: skip
    print(f"{'path':<8}{'seconds':>9}{'records/s':>12}{'vs bare':>9}")
    for label, seconds in (("bare", bare_s), ("bronze", bronze_s)):
        print(f"{label:<8}{seconds:>9.1f}{args.records / seconds:>12,.0f}{bare_s / seconds:>9.2f}")
    print(f"(bronze landed {landed:,} rows; aim: >= 100,000 records/s and >= 0.8 of bare)")
    print(f"checkpoints: {checkpoints}; load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
