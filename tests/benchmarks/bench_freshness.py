"""Benchmark: twin freshness at 10,000 readings/s over 5,000 sensors, the lake path as deployed,
against the two floors of the issue, side by side in one run.

Run with the stack up (and nothing else using the 2 cores):
`.venv/bin/python tests/benchmarks/bench_freshness.py [--rate 10000] [--seconds 180]
[--assets 250] [--sensors 20] [--floor-seconds 90] [--drain 120] [--no-floors]`

  plant     - a synthetic plant of assets x sensors (default 250 x 20 = 5,000 sensors) in the
              asset registry (written with delta-rs), readings of five analog quantities in their
              canonical units, varying so that no rule holds them back
  producer  - its own process sends `--rate` canonical readings a second, round robin over the
              sensors, keyed by asset as the edge does; receive_time_ms is stamped at send
  deployed  - `plantlake pipeline up`: the hot path (its own process), bronze, the cold path
              (silver + aggregates, 30 s trigger) and features every 5 minutes (one Spark session)
              - twin: for every value the hot path committed, its commit time (stamped when
                delta-rs returned) minus the reading's receive time, from the asset_state
                messages; cross-checked against the Delta log's own commit timestamps
              - asset_state: when this process received the message, minus the receive time
              - silver lag: silver_time minus receive_time of every silver row of the run
              - memory: peak resident set (VmHWM) of each process of the lake path
  floors    - the same producer and plant, each floor on fresh topics, `--floor-seconds` long:
              - python: one process, confluent-kafka + orjson, a dict of the latest row per
                sensor, `write_deltalake(mode="overwrite")` every 0.5 s, offsets committed after
              - spark: Kafka -> foreachBatch that overwrites a latest-per-sensor Delta table,
                processingTime 0, local checkpoint, local[2]
              freshness of each committed row: commit time minus its receive time

Aims (issue 14): twin p50 < 1 s and p99 < 2 s; asset_state p99 < 1 s; silver lag p99 < 90 s;
twin p50 at most 2x the faster floor's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from plantlake.core.config import LakeSettings, Settings, load_settings
from plantlake.core.contracts import (
    GOLD_TWIN_STATE,
    REFERENCE_ASSET_REGISTRY,
    REFERENCE_UNITS,
    SILVER_TELEMETRY,
)
from plantlake.core.topics import topic
from plantlake.lake.tables import delta_uri
from plantlake.pipelines.transforms.unit_conversion import unit_rows
from plantlake.services.kafka import delete_prefixed_topics, ensure_topics
from plantlake.services.minio import delta_rs_options

QUANTITIES = (("temperature", "degC", 60.0), ("pressure", "bar", 5.0), ("current", "A", 20.0),
              ("flow", "m3/h", 30.0), ("speed", "rpm", 1480.0))  # fmt: skip
FLUSH_S = 0.5
# delta-rs's runtime does not survive a fork: child processes start fresh.
SPAWN = multiprocessing.get_context("spawn")


def plant(assets: int, sensors: int) -> list[tuple[str, str, str, str, float]]:
    """(asset, sensor, quantity, unit, base value) of every sensor of the synthetic plant."""
    return [
        (f"bench/line{a // 50}/asset-{a:03d}", f"s{s:02d}", *QUANTITIES[s % len(QUANTITIES)])
        for a in range(assets)
        for s in range(sensors)
    ]


def write_reference(settings: Settings, sensors) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    options = delta_rs_options(settings)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    registry = pa.Table.from_pylist(
        [{"asset": a, "sensor": s, "asset_class": "pump", "quantity": q, "site": "bench",
          "line": a.split("/")[1], "valid_from": since, "valid_to": None}
         for a, s, q, _u, _b in sensors],
        schema=pa.schema([("asset", pa.string()), ("sensor", pa.string()),
                          ("asset_class", pa.string()), ("quantity", pa.string()),
                          ("site", pa.string()), ("line", pa.string()),
                          ("valid_from", pa.timestamp("us", tz="UTC")),
                          ("valid_to", pa.timestamp("us", tz="UTC"))]),
    )  # fmt: skip
    units = pa.Table.from_pylist(unit_rows())
    for ref, table in ((REFERENCE_ASSET_REGISTRY, registry), (REFERENCE_UNITS, units)):
        uri = delta_uri(ref.path(settings.lake))
        write_deltalake(uri, table, mode="overwrite", storage_options=options)


def produce(kafka, topic_name: str, sensors, rate: int, seconds: float, results) -> None:
    """Send `rate` readings a second for `seconds` (its own process); puts (sent, elapsed)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 5,
                         "compression.type": "zstd", "partitioner": "murmur2_random"})  # fmt: skip
    rng = random.Random(7)
    sent, started = 0, time.time()
    while (now := time.time()) < started + seconds:
        now_ms = int(now * 1000)
        for _ in range(int((now - started) * rate) - sent):
            asset, sensor, _q, unit, base = sensors[sent % len(sensors)]
            record = {
                "schema_version": 1, "asset": asset, "sensor": sensor,
                "value": round(base * (1 + 0.05 * rng.random()), 4), "unit": unit,
                "quality": "Good", "event_time_ms": now_ms - 20, "receive_time_ms": now_ms,
                "source_protocol": "opcua", "source_node": "bench", "sequence": sent,
                "filter_version": "bench",
            }  # fmt: skip
            producer.produce(topic_name, key=asset.encode(), value=orjson.dumps(record))
            sent += 1
        producer.poll(0)
        time.sleep(0.002)
    elapsed = time.time() - started
    producer.flush(60)
    results.put((sent, elapsed))


def start_producer(settings, sensors, rate, seconds):
    name = topic("telemetry").name(settings.kafka.topic_prefix)
    results = SPAWN.Queue()
    process = SPAWN.Process(
        target=produce, args=(settings.kafka, name, sensors, rate, seconds, results)
    )
    process.start()
    return process, results


def pct(values, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def figures(name: str, values_s) -> str:
    return (f"{name:<34} n={len(values_s):>9,}  p50 {pct(values_s, 0.5):6.2f} s  "
            f"p99 {pct(values_s, 0.99):6.2f} s  max {max(values_s, default=float('nan')):6.2f} s")  # fmt: skip


def peak_rss_mb(root_pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) of a process and its descendants, by command name."""
    peaks: dict[str, float] = {}
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        kb = int(fields.get("VmHWM", "0 kB").split()[0])
        name = f"{fields['Name'].strip()}[{pid}]"
        peaks[name] = kb / 1024
        pending += [int(c) for c in children]
    return peaks


def bench_settings(base: Settings, run: str, phase: str, tmp: Path) -> Settings:
    prefix = f"bench-{run}-{phase}"
    return base.model_copy(update={
        "kafka": base.kafka.model_copy(update={"topic_prefix": prefix}),
        "lake": LakeSettings(root=f"s3a://plantlake/bench/{run}/{phase}",
                             checkpoint_root=f"file://{tmp}/{phase}/checkpoints"),
        "hot_path": base.hot_path.model_copy(update={"group_id": f"{prefix}-hot"}),
    })  # fmt: skip


def bench_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PLANTLAKE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "PLANTLAKE_LAKE__ROOT": settings.lake.root,
        "PLANTLAKE_LAKE__CHECKPOINT_ROOT": settings.lake.checkpoint_root,
        "PLANTLAKE_HOT_PATH__GROUP_ID": settings.hot_path.group_id,
    }


def collect_asset_state(settings: Settings, until: float, results: list) -> None:
    """(receive->twin commit s, receive->asset_state s, version, committed_ms) per new value."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": f"{settings.kafka.topic_prefix}-reader",
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 20})  # fmt: skip
    consumer.subscribe([topic("asset_state").name(settings.kafka.topic_prefix)])
    while time.time() < until:
        for message in consumer.consume(2000, timeout=0.2):
            if message.error() is not None:
                continue
            seen_ms = time.time() * 1000
            m = orjson.loads(message.value())
            if m["change"] == "value":
                received = m["receive_time_ms"]
                results.append(((m["twin_committed_ms"] - received) / 1000,
                                (seen_ms - received) / 1000, m["twin_version"],
                                m["twin_committed_ms"]))  # fmt: skip
    consumer.close()


def run_deployed(settings: Settings, sensors, args, log: Path) -> dict:
    """`plantlake pipeline up` under the producer; returns the measured figures."""
    import threading

    from deltalake import DeltaTable

    exe = str(Path(sys.executable).parent / "plantlake")
    with log.open("wb") as out:
        up = subprocess.Popen([exe, "pipeline", "up"], env=bench_env(settings), stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    status = settings.home / "run" / f"hot-path-{settings.hot_path.group_id}.json"
    deadline = time.time() + 120
    while not (status.exists() and orjson.loads(status.read_bytes())["partitions"]):
        if time.time() > deadline or up.poll() is not None:
            raise SystemExit(f"pipeline up did not start its hot path; see {log}")
        time.sleep(1)
    print(f"pipeline up is running (log {log}); producing {args.rate}/s for {args.seconds} s")
    values: list = []
    reader = threading.Thread(target=collect_asset_state,
                              args=(settings, time.time() + args.seconds + 20, values))  # fmt: skip
    reader.start()
    producer, results = start_producer(settings, sensors, args.rate, args.seconds)
    for _ in range(int(args.seconds // 30)):
        time.sleep(30)
        hot = orjson.loads(status.read_bytes())
        print(f"  {time.strftime('%H:%M:%S')} hot path: {hot['readings']:,} readings, lag "
              f"{hot['lag']:,}, p50 {hot['freshness_p50_s']} s, p99 {hot['freshness_p99_s']} s; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    producer.join()
    sent, elapsed = results.get()
    reader.join()
    print(f"  producer: {sent:,} readings in {elapsed:.0f} s ({sent / elapsed:,.0f}/s); "
          f"draining the cold path for up to {args.drain} s")  # fmt: skip
    options = delta_rs_options(settings)
    silver_uri = delta_uri(SILVER_TELEMETRY.path(settings.lake))
    drain_until, silver_rows = time.time() + args.drain, 0
    while time.time() < drain_until:
        try:
            table = DeltaTable(silver_uri, storage_options=options)
            silver_rows = sum(table.get_add_actions(flatten=True).column("num_records").to_pylist())
        except Exception:  # noqa: BLE001 - not created yet
            silver_rows = 0
        if silver_rows >= sent:
            break
        time.sleep(5)
    memory = peak_rss_mb(up.pid)
    up.send_signal(signal.SIGINT)
    try:
        up.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(up.pid, signal.SIGKILL)
    # Cross-check: the Delta log's own commit timestamps against the hot path's stamps.
    twin = DeltaTable(delta_uri(GOLD_TWIN_STATE.path(settings.lake)), storage_options=options)
    log_ms = {h["version"]: h["timestamp"] for h in twin.history()}
    skew = [log_ms[v] - c for _, _, v, c in values if v in log_ms]
    silver = DeltaTable(silver_uri, storage_options=options).to_pyarrow_table(
        columns=["receive_time", "silver_time"]
    )
    pairs = list(zip(silver["receive_time"].to_pylist(), silver["silver_time"].to_pylist(),
                     strict=True))  # fmt: skip
    lag = [(s - r).total_seconds() for r, s in pairs]
    # The first minute includes the Spark side's start (session, first batches, JIT).
    first = min((r for r, _ in pairs), default=None)
    steady = [(s - r).total_seconds() for r, s in pairs if (r - first).total_seconds() >= 60]
    return {"sent": sent, "elapsed": elapsed, "values": values, "skew_ms": skew,
            "silver_lag": lag, "silver_steady": steady, "silver_rows": silver_rows,
            "memory": memory}  # fmt: skip


def python_floor(settings: Settings, seconds: float, results) -> None:
    """The issue's Python floor (its own process); puts the receive -> commit seconds."""
    import pyarrow as pa
    from confluent_kafka import Consumer
    from deltalake import write_deltalake

    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": f"{settings.kafka.topic_prefix}-floor",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 50})  # fmt: skip
    consumer.subscribe([topic("telemetry").name(settings.kafka.topic_prefix)])
    uri = delta_uri(f"{settings.lake.root}/floor/python_twin")
    options = delta_rs_options(settings)
    latest: dict = {}
    fresh: set = set()
    out, last, stop_at = [], time.time(), time.time() + seconds
    while time.time() < stop_at:
        for message in consumer.consume(10_000, timeout=max(0.0, FLUSH_S - (time.time() - last))):
            if message.error() is None:
                r = orjson.loads(message.value())
                latest[(r["asset"], r["sensor"])] = r
                fresh.add((r["asset"], r["sensor"]))
        if time.time() - last >= FLUSH_S and latest:
            write_deltalake(uri, pa.Table.from_pylist(list(latest.values())), mode="overwrite",
                            storage_options=options)  # fmt: skip
            committed = time.time() * 1000
            out += [(committed - latest[k]["receive_time_ms"]) / 1000 for k in fresh]
            if fresh:
                consumer.commit(asynchronous=False)
            fresh.clear()
            last = time.time()
    consumer.close()
    results.put(out)


SPARK_FLOOR = r"""
import json, sys, time
from pyspark.sql import functions as F
from plantlake.core.config import load_settings
from plantlake.adapters.spark import get_spark
settings = load_settings()
spark = get_spark(settings, app_name="floor", master="local[2]")
schema = "asset string, sensor string, value double, receive_time_ms long"
path = settings.lake.root + "/floor/spark_twin"
out = open(sys.argv[1], "w")
def batch(df, batch_id):
    rows = df.select(F.from_json(F.col("value").cast("string"), schema).alias("r")).select("r.*")
    latest = rows.groupBy("asset", "sensor").agg(F.max_by("receive_time_ms", "receive_time_ms").alias("receive_time_ms"), F.max_by("value", "receive_time_ms").alias("value")).persist()
    latest.write.format("delta").mode("overwrite").save(path)
    committed = time.time() * 1000
    received = [r[0] for r in latest.select("receive_time_ms").collect()]
    latest.unpersist()
    out.write(json.dumps([(committed - t) / 1000 for t in received]) + "\n"); out.flush()
query = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
         .option("subscribe", settings.kafka.topic_prefix + ".telemetry").option("startingOffsets", "earliest").load()
         .writeStream.option("checkpointLocation", settings.lake.checkpoint_root + "/floor")
         .trigger(processingTime="0 seconds").foreachBatch(batch).start())
query.awaitTermination(float(sys.argv[2]))
query.stop()
"""


def run_floor(kind: str, settings: Settings, sensors, args, tmp: Path) -> list[float]:
    producer, results = start_producer(settings, sensors, args.rate, args.floor_seconds)
    if kind == "python":
        floor_results = SPAWN.Queue()
        floor = SPAWN.Process(target=python_floor,
                                        args=(settings, args.floor_seconds + 5, floor_results))  # fmt: skip
        floor.start()
        values = floor_results.get()
        floor.join()
    else:
        script, out = tmp / "spark_floor.py", tmp / "spark_floor.jsonl"
        script.write_text(SPARK_FLOOR)
        subprocess.run([sys.executable, str(script), str(out), str(args.floor_seconds + 30)],
                       env=bench_env(settings), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        values = [v for line in out.read_text().splitlines() for v in orjson.loads(line)]
    producer.join()
    sent, elapsed = results.get()
    print(f"  {kind} floor: producer sent {sent:,} in {elapsed:.0f} s")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--assets", type=int, default=250)
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--floor-seconds", type=float, default=90)
    parser.add_argument("--drain", type=float, default=120)
    parser.add_argument("--no-floors", action="store_true")
    args = parser.parse_args()
    base = load_settings()
    sensors = plant(args.assets, args.sensors)
    run = uuid.uuid4().hex[:6]
    tmp = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    print(f"plant: {len(sensors):,} sensors; rate {args.rate:,}/s; {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.1f}; scratch {tmp}")  # fmt: skip
    phases = ["deployed"] + ([] if args.no_floors else ["python", "spark"])
    report, floors = {}, {}
    for phase in phases:
        settings = bench_settings(base, run, phase, tmp)
        ensure_topics(settings, lambda _line: None)
        try:
            if phase == "deployed":
                write_reference(settings, sensors)
                report = run_deployed(settings, sensors, args, tmp / "pipeline-up.log")
                print_deployed(report, sensors)
            else:
                floors[phase] = run_floor(phase, settings, sensors, args, tmp)
                print(figures(f"{phase} floor: receive -> commit", floors[phase]), flush=True)
        finally:
            delete_prefixed_topics(settings)
    print_comparison(report, floors)


def print_deployed(report: dict, sensors) -> None:
    values = report["values"]
    print(f"\nFreshness at {report['sent'] / report['elapsed']:,.0f} readings/s over "
          f"{len(sensors):,} sensors for {report['elapsed']:.0f} s (bronze, cold path, features "
          f"running; load now {os.getloadavg()[0]:.1f})")  # fmt: skip
    twin = [v[0] for v in values]
    print(figures("receive -> gold.twin_state commit", twin) + "   aim p50 < 1 s, p99 < 2 s")
    print(figures("receive -> asset_state received", [v[1] for v in values]) + "   aim p99 < 1 s")
    print(figures("receive -> silver.telemetry", report["silver_lag"]) + "   aim p99 < 90 s")
    print(figures("  the same after the first minute", report["silver_steady"]))
    print(
        f"{'':<34} silver held {report['silver_rows']:,} of {report['sent']:,} readings at the end"
    )
    if report["skew_ms"]:
        print(f"cross-check: Delta log commit time minus the hot path's stamp, median "
              f"{pct(report['skew_ms'], 0.5):.0f} ms (n={len(report['skew_ms']):,})")  # fmt: skip
    print("peak resident memory of the lake path (VmHWM):")
    for name, mb in sorted(report["memory"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<32} {mb:8.0f} MB")
    print(f"  {'total (sum of peaks)':<32} {sum(report['memory'].values()):8.0f} MB", flush=True)


def print_comparison(report: dict, floors: dict) -> None:
    twin = [v[0] for v in report["values"]]
    print(f"\nSide by side (one run): {figures('twin, deployed', twin)}")
    for phase, floor in floors.items():
        print(f"{'':<24}{figures(f'{phase} floor', floor)}")
    if floors:
        faster = min(floors, key=lambda k: pct(floors[k], 0.5))
        ratio50 = pct(twin, 0.5) / pct(floors[faster], 0.5)
        ratio99 = pct(twin, 0.99) / pct(floors[faster], 0.99)
        print(f"twin / {faster} floor (the faster): p50 {ratio50:.2f}x, p99 {ratio99:.2f}x "
              "(aim <= 2x)")  # fmt: skip


if __name__ == "__main__":
    main()
