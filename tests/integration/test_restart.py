"""Crash recovery: bronze and gold jobs SIGKILLed mid-batch and restarted lose and repeat nothing.

Each job runs as its own OS process (`plantlake pipeline run LAYER`), pointed at the test's lake
and topics through PLANTLAKE_* environment overrides. The kill goes to the whole process group,
Python driver and JVM at once, as a crash would; killing the driver alone would let the JVM
run its shutdown hooks (it exits on the closed py4j pipe), which is a clean stop, not a crash.

The lake and the checkpoints are on S3A (MinIO), as in production; the test reads the checkpoint
with the MinIO client to see where the job stood. A batch is mid-flight when the checkpoint has
offsets/N (the batch was planned) but no commits/N (it did not finish).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlparse

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from deltalake import DeltaTable

from plantlake.adapters.kafka import produce, producer_config
from plantlake.app.demo import demo_readings
from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import (
    BRONZE_DEAD_LETTER,
    BRONZE_LIFECYCLE,
    BRONZE_TELEMETRY,
    SILVER_TELEMETRY_COLUMNS,
)
from plantlake.core.topics import topic
from plantlake.pipelines.jobs import gold
from plantlake.pipelines.jobs.gold import GoldOptions, GoldPaths
from plantlake.pipelines.transforms.aggregates import AGGREGATE_COLUMNS, LATE_DATA_COLUMNS
from plantlake.services.minio import s3_client

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window boundary, in the past
MIN = 60_000
DAY = 86_400_000
LINEAGE = ("kafka_topic", "kafka_partition", "kafka_offset")


# --- the job as a separate process -------------------------------------------------------------


def start_job(
    layer: str,
    settings: Settings,
    log: Path,
    *,
    once: bool,
    extra_env: dict | None = None,
    extra_args: Iterable[str] = (),
) -> subprocess.Popen:
    """`plantlake pipeline run LAYER` in its own process group, on `settings`' lake and topics."""
    env = (
        os.environ
        | {
            "PLANTLAKE_LAKE__ROOT": settings.lake.root,
            "PLANTLAKE_LAKE__CHECKPOINT_ROOT": settings.lake.checkpoint_root,
            "PLANTLAKE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        }
        | (extra_env or {})
    )
    command = [sys.executable, "-c", "from plantlake.app.cli import main; main()",
               "pipeline", "run", layer, *(["--once"] if once else []), *extra_args]  # fmt: skip
    with log.open("a") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def crash(job: subprocess.Popen) -> None:
    """SIGKILL the job's process group (driver and JVM) and wait until none of it is left."""
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(job.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of group {job.pid} survived SIGKILL")


def finish(job: subprocess.Popen, log: Path, *, timeout: float) -> None:
    try:
        code = job.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        crash(job)
        raise AssertionError(
            f"job still running after {timeout}s:\n{log.read_text()[-3000:]}"
        ) from None
    assert code == 0, log.read_text()[-3000:]


def wait_until(
    condition: Callable[[], bool], job: subprocess.Popen, log: Path, *, timeout: float
) -> None:
    """Poll `condition` while the job runs; fail if the job exits or time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if job.poll() is not None:
            raise AssertionError(f"job exited ({job.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{condition.__name__} not true within {timeout}s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)


# --- what the job left on S3 -------------------------------------------------------------------


class Store:
    """Object listings under s3a:// URIs of the lake (MinIO client, no Spark)."""

    def __init__(self, settings: Settings):
        self.client = s3_client(settings)

    def names(self, uri: str) -> set[str]:
        url = urlparse(uri)
        prefix = url.path.lstrip("/") + "/"
        listing = self.client.list_objects(url.netloc, prefix=prefix, recursive=True)
        return {o.object_name[len(prefix) :] for o in listing}

    def batches(self, checkpoint: str) -> tuple[set[int], set[int]]:
        """Batch ids with an offsets file (planned) and with a commits file (done)."""
        names = self.names(checkpoint)

        def ids(folder: str) -> set[int]:
            return {
                int(n.split("/")[1])
                for n in names
                if n.startswith(f"{folder}/") and n.split("/")[1].isdigit()
            }

        return ids("offsets"), ids("commits")

    def delta_versions(self, table: str) -> set[int]:
        return {
            int(n.removesuffix(".json"))
            for n in self.names(f"{table}/_delta_log")
            if n.endswith(".json") and n.removesuffix(".json").isdigit()
        }


def lineage(settings: Settings, table: str) -> list[tuple[str, int, int]]:
    """The Kafka lineage of every row of a Delta table on S3, read with delta-rs (no JVM)."""
    s3 = settings.s3
    options = {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key.get_secret_value(),
        "AWS_REGION": s3.region,
        "AWS_ALLOW_HTTP": "true",
    }
    rows = DeltaTable(table.replace("s3a://", "s3://", 1), storage_options=options)
    columns = rows.to_pyarrow_table(columns=list(LINEAGE)).to_pydict()
    return list(zip(*(columns[c] for c in LINEAGE), strict=True))


# --- Kafka -------------------------------------------------------------------------------------


def produce_raw(settings: Settings, name: str, payloads: Iterable[bytes]) -> None:
    producer = Producer(producer_config(settings.kafka))
    for i, payload in enumerate(payloads):
        producer.produce(name, key=f"raw-{i}".encode(), value=payload)
        producer.poll(0)
    assert producer.flush(30) == 0


def every_offset(settings: Settings, names: Iterable[str]) -> set[tuple[str, int, int]]:
    """(topic, partition, offset) of every record the topics hold (no transactions: no gaps)."""
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": uuid.uuid4().hex}
    )
    try:
        found = set()
        for name in names:
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            for p in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                found |= {(name, p, offset) for offset in range(low, high)}
        return found
    finally:
        consumer.close()


def lifecycle_event(i: int) -> dict:
    return {
        "kind": ("birth", "death", "stale", "reconnected")[i % 4],
        "source_protocol": "sparkplug", "source_node": f"node-{i % 3}",
        "event_time_ms": T0 + i * 1000, "receive_time_ms": T0 + i * 1000 + 5,
        "device": None, "asset": f"plant1/line1/asset-{i % 7}", "bd_seq": i, "detail": None,
    }  # fmt: skip


# --- bronze ------------------------------------------------------------------------------------


def test_bronze_killed_mid_batch_then_restarted_lands_every_offset_exactly_once(
    isolated_kafka, tmp_path
):
    settings = isolated_kafka
    lake = settings.lake
    names = {
        key: topic(key).name(settings.kafka.topic_prefix) for key in ("telemetry", "lifecycle")
    }
    # One large first batch (bronze reads up to 500,000 offsets per trigger) spanning all three
    # bronze tables, which the batch writes one after another: telemetry, lifecycle, dead letter.
    produce(settings.kafka, names["telemetry"], demo_readings("crash", count=6000, start_ms=T0))
    produce(settings.kafka, names["lifecycle"], [lifecycle_event(i) for i in range(60)])
    produce_raw(settings, names["telemetry"], [b"{not json %d" % i for i in range(40)])
    expected = every_offset(settings, names.values())
    assert len(expected) == 6100

    store = Store(settings)
    checkpoint = lake.checkpoint_path("bronze")
    telemetry = BRONZE_TELEMETRY.path(lake)

    def telemetry_written_batch_open() -> bool:
        planned, done = store.batches(checkpoint)
        return 0 in planned and 0 not in done and 0 in store.delta_versions(telemetry)

    log = tmp_path / "bronze.log"
    job = start_job("bronze", settings, log, once=False)
    try:
        wait_until(telemetry_written_batch_open, job, log, timeout=150)
    finally:
        crash(job)

    # The process is gone: this is the state it died in. Batch 0 was planned, bronze.telemetry
    # had committed it, and the batch was not done (lifecycle and dead letter may not have been).
    planned, done = store.batches(checkpoint)
    assert (planned, done) == ({0}, set()), "the kill did not land inside batch 0"
    assert store.delta_versions(telemetry) == {0}

    finish(start_job("bronze", settings, log, once=True), log, timeout=240)

    # The retried batch 0 skipped the telemetry append Delta already had (same txnAppId and
    # txnVersion): still one commit, and every offset of both topics in exactly one table, once.
    assert store.delta_versions(telemetry) == {0}
    planned, done = store.batches(checkpoint)
    assert 0 in done and planned == done
    tables = {
        ref.name: lineage(settings, ref.path(lake))
        for ref in (BRONZE_TELEMETRY, BRONZE_LIFECYCLE, BRONZE_DEAD_LETTER)
    }
    assert {name: len(rows) for name, rows in tables.items()} == {
        "bronze.telemetry": 6000,
        "bronze.lifecycle": 60,
        "bronze.dead_letter": 40,
    }
    landed = [key for rows in tables.values() for key in rows]
    assert len(landed) == len(set(landed)), "a Kafka record landed twice"
    assert set(landed) == expected


# --- gold --------------------------------------------------------------------------------------

SILVER_SCHEMA = ", ".join(f"{c.name} {c.type}" for c in SILVER_TELEMETRY_COLUMNS)
SENSORS = (("bearing_temperature", "temperature", "degC", 60.0),
           ("discharge_pressure", "pressure", "bar", 6.0),
           ("motor_current", "current", "A", 40.0))  # fmt: skip


def silver_input() -> tuple[list[tuple], list[tuple]]:
    """Two deliveries of silver.telemetry rows (the second written a day after the first).

    10 assets x 3 sensors, a reading every 10 s for 20 minutes. The first delivery holds minutes
    0-10 except minute 7 of even assets, which comes with minutes 10-20 in the second (within the
    watermark: gold recomputes and replaces those windows), as does one reading 40 minutes old
    (beyond the watermark: gold.late_data). Some readings are Uncertain (no aggregate counts them).
    """
    rng = random.Random(11)
    first, second = [], []
    offset = 0
    for a in range(10):
        asset = f"plant1/line{a % 2 + 1}/pump-{a:02d}"
        for sensor, quantity, unit, base in SENSORS:
            for t in range(T0, T0 + 20 * MIN, 10_000):
                minute = (t - T0) // MIN
                later = minute >= 10 or (minute == 7 and a % 2 == 0)
                row = silver_row(
                    asset, sensor, quantity, unit, round(rng.gauss(base, base / 20), 4), t,
                    quality="Uncertain" if rng.random() < 0.03 else "Good",
                    offset=offset, written_ms=T0 + (2 if later else 1) * DAY,
                )  # fmt: skip
                (second if later else first).append(row)
                offset += 1
    old = T0 - 40 * MIN
    second.append(
        silver_row("plant1/line1/pump-00", "bearing_temperature", "temperature", "degC", 61.0,
                   old, quality="Good", offset=offset, written_ms=T0 + 2 * DAY)
    )  # fmt: skip
    return first, second


def silver_row(asset, sensor, quantity, unit, value, t_ms, *, quality, offset, written_ms):
    """One silver.telemetry row, in SILVER_TELEMETRY_COLUMNS order."""
    return (
        asset, sensor, "pump", quantity, value, unit, value, unit, quality,
        _ts(t_ms), t_ms, _ts(t_ms + 50), "opcua", "node-1", None, "f1", [],
        "plantlake.telemetry", offset % 6, offset, _ts(t_ms + 60), _ts(written_ms), None,
    )  # fmt: skip


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _deliver(spark, settings: Settings, rows: list[tuple]) -> None:
    frame = spark.createDataFrame(rows, SILVER_SCHEMA)
    frame.write.format("delta").mode("append").save(GoldPaths.for_lake(settings.lake).silver)


def _gold_tables(spark, settings: Settings) -> dict[str, list[tuple]]:
    """Every gold table's rows without the columns that record when the job ran."""
    paths = GoldPaths.for_lake(settings.lake)
    columns = {
        paths.watermarks: ("asset", "sensor", "event_time_ms"),
        paths.windows["1m"]: AGGREGATE_COLUMNS,
        paths.windows["5m"]: AGGREGATE_COLUMNS,
        # batch_id last: the tests compare it on its own
        paths.late_data: [c for c in LATE_DATA_COLUMNS if c not in ("arrival_time", "batch_id")]
        + ["batch_id"],
    }
    return {
        path.rsplit("/", 1)[1]: sorted(
            tuple(r) for r in spark.read.format("delta").load(path).select(*cols).collect()
        )
        for path, cols in columns.items()
    }


def test_gold_killed_mid_batch_then_restarted_equals_an_uninterrupted_run(
    spark, scratch_lake, tmp_path
):
    first, second = silver_input()

    # The uninterrupted run: the same two batches through the function the gold job calls per
    # micro-batch, in this process, without a crash (on a file:// lake of its own, for speed).
    reference = scratch_lake.model_copy(update={"lake": LakeSettings(
        root=f"file://{tmp_path}/ref/lake", checkpoint_root=f"file://{tmp_path}/ref/chk")})  # fmt: skip
    for batch_id, delivery in enumerate((first, second)):
        _deliver(spark, reference, delivery)
        gold.process_batch(
            spark.createDataFrame(delivery, SILVER_SCHEMA), batch_id,
            paths=GoldPaths.for_lake(reference.lake), app_id="reference", options=GoldOptions.of(reference.pipeline),
        )  # fmt: skip
    expected = _gold_tables(spark, reference)

    # The crashed run, on S3A: a continuous gold process; batch 0 takes the first delivery (the
    # second is written once batch 0 is planned, so the next batch takes it); that batch is
    # killed once it had MERGEd telemetry_1m (its first write) but not finished (telemetry_5m,
    # late data and watermarks still to come). Batch 0 created
    # each gold table: version 0.
    settings = scratch_lake
    paths = GoldPaths.for_lake(settings.lake)
    store = Store(settings)
    checkpoint = settings.lake.checkpoint_path("gold")
    _deliver(spark, settings, first)
    log = tmp_path / "gold.log"
    job = start_job("gold", settings, log, once=False)
    try:
        wait_until(lambda: 0 in store.batches(checkpoint)[0], job, log, timeout=150)
        _deliver(spark, settings, second)

        def minute_merged_batch_open() -> bool:
            planned, done = store.batches(checkpoint)
            return 1 in store.delta_versions(paths.windows["1m"]) and bool(planned - done)

        wait_until(minute_merged_batch_open, job, log, timeout=240)
    finally:
        crash(job)

    planned, done = store.batches(checkpoint)
    [open_batch] = planned - done  # the kill landed inside this batch
    assert open_batch == max(planned) > 0
    assert store.delta_versions(paths.windows["1m"]) == {0, 1}

    finish(start_job("gold", settings, log, once=True), log, timeout=300)

    planned, done = store.batches(checkpoint)
    assert open_batch in done
    # The retried batch skipped the write Delta already had (txnAppId/txnVersion): no second
    # MERGE of telemetry_1m; the batch's late-data append happened once (before or after).
    assert store.delta_versions(paths.windows["1m"]) == {0, 1}
    assert store.delta_versions(paths.late_data) == {0, 1}
    got = _gold_tables(spark, settings)
    for name in ("telemetry_1m", "telemetry_5m"):
        keys = [(r[0], r[1], r[4]) for r in got[name]]  # asset, sensor, window_start_ms
        assert len(keys) == len(set(keys)), f"gold.{name} holds a window twice"
    # The 40-minute-old reading, once per window size, recorded by the batch that was retried.
    assert [row[-1] for row in got["late_data"]] == [open_batch, open_batch]
    assert [row[-1] for row in expected["late_data"]] == [1, 1]
    for rows in (got, expected):  # the batch id depends on how the deliveries were batched
        rows["late_data"] = [row[:-1] for row in rows["late_data"]]
    assert got == expected
