"""The end-to-end demo: readings into Kafka, through the bronze job, read back from Delta on MinIO."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator

from rich.console import Console
from rich.table import Table

from plantlake.config import Settings
from plantlake.contracts import BRONZE_DEAD_LETTER, BRONZE_TELEMETRY, RECORD_SCHEMA_VERSION
from plantlake.topics import topic

ASSETS = ("plant1/line1/press-01", "plant1/line1/pump-02", "plant1/line2/motor-07")
SENSORS = (("temperature", "degC", 60.0), ("pressure", "bar", 4.0), ("current", "A", 12.0))


def demo_readings(run_id: str, *, count: int, start_ms: int) -> Iterator[dict]:
    """`count` canonical readings spread over the demo assets and sensors, one second apart."""
    for i in range(count):
        asset = ASSETS[i % len(ASSETS)]
        sensor, unit, base = SENSORS[(i // len(ASSETS)) % len(SENSORS)]
        yield {
            "schema_version": RECORD_SCHEMA_VERSION,
            "asset": asset,
            "sensor": sensor,
            "value": round(base * (1 + 0.05 * math.sin(i / 5)), 3),
            "unit": unit,
            "quality": "Good",
            "event_time_ms": start_ms + i * 1000,
            "receive_time_ms": start_ms + i * 1000 + 40,
            "source_protocol": "demo",
            "source_node": f"demo-{run_id}",
            "sequence": i,
            "filter_version": None,
        }


def run_demo(settings: Settings, console: Console, *, count: int = 12) -> int:
    """Publish `count` readings and one malformed record, land them in bronze, print what landed."""
    from pyspark.sql import functions as F

    from plantlake.ingest.kafka_sink import produce, produce_raw
    from plantlake.pipelines import bronze
    from plantlake.pipelines.delta_io import read_delta
    from plantlake.spark import get_spark

    run_id = uuid.uuid4().hex[:8]
    telemetry_topic = topic("telemetry").name(settings.kafka.topic_prefix)
    start_ms = int(time.time() * 1000) - count * 1000
    sent = produce(
        settings.kafka, telemetry_topic, demo_readings(run_id, count=count, start_ms=start_ms)
    )
    produce_raw(settings.kafka, telemetry_topic, b"plant1/line1/press-01",
                f'{{"asset": "plant1/line1/press-01", "demo_run": "{run_id}", "value": "oops"'.encode())  # fmt: skip
    console.print(f"published {sent} readings and 1 malformed record to [bold]{telemetry_topic}[/] "
                  f"(demo run {run_id})")  # fmt: skip

    console.print("starting Spark and running the bronze job once (availableNow) ...")
    spark = get_spark(settings, app_name="plantlake-demo")
    started = time.monotonic()
    bronze.run(spark, settings, once=True).awaitTermination()
    console.print(f"bronze job finished in {time.monotonic() - started:.1f}s")

    path = BRONZE_TELEMETRY.path(settings.lake)
    landed = (
        read_delta(spark, path)
        .where(F.col("source_node") == f"demo-{run_id}")
        .orderBy("event_time", "asset", "sensor")
        .select("asset", "sensor", "value", "unit", "quality", "event_time",
                "kafka_partition", "kafka_offset")
        .collect()
    )  # fmt: skip
    table = Table(title=f"bronze.telemetry at {path} (demo run {run_id})")
    for name in (
        "asset",
        "sensor",
        "value",
        "unit",
        "quality",
        "event_time",
        "partition",
        "offset",
    ):
        table.add_column(name)
    for row in landed:
        table.add_row(*(str(v) for v in row))
    console.print(table)

    dead = (
        read_delta(spark, BRONZE_DEAD_LETTER.path(settings.lake))
        .where(F.col("raw_value").cast("string").contains(run_id))
        .select("reason").collect()
    )  # fmt: skip
    for row in dead:
        console.print(f"bronze.dead_letter holds the malformed record: [yellow]{row.reason}[/]")
    spark.stop()
    if len(landed) != sent or len(dead) != 1:
        console.print(
            f"[red]expected {sent} rows and 1 dead letter, found {len(landed)} and {len(dead)}[/]"
        )
        return 1
    console.print(f"[green]{len(landed)} of {sent} readings landed in bronze on the lake.[/]")
    return 0
