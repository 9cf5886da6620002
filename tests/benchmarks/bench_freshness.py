"""Benchmark: freshness, from a reading's source timestamp (event_time_ms) to its value being
visible in gold.twin_state, while a producer sends a steady stream through bronze, silver and gold.

Run with the stack up: `.venv/bin/python tests/benchmarks/bench_freshness.py [--rate 10000]
[--seconds 180] [--warmup 30] [--drain 120] [--marker-hz 5] [--shape session|processes]`.

  pipeline - bronze, silver and gold running continuously with the layers' own processingTime
             triggers (bronze 5 s, silver 10 s, gold 10 s; no CLI option changes them), either
             as three streaming queries in one Spark session on local[2] in this process
             (`session`, the default: one JVM on this 2-core machine), or as three
             `plantlake pipeline run LAYER` processes, each its own session on local[2]
             (`processes`, as a deployment runs them)
  producer - its own process sends `--rate` canonical readings a second over the registered
             analog sensors into an isolated telemetry topic, keyed by asset like the edge
  markers  - one registered sensor gets `--marker-hz` readings a second within that rate. A marker
             is visible at the commit of the first gold.twin_state version whose row for that
             sensor has event_time_ms >= the marker's (Delta commit timestamps; the versions are
             read with deltalake after the run, so measuring costs the pipeline nothing). A 1 Hz
             live poll of gold.twin_state prints progress and gives a cross-check (poll-observed).
  layers   - from silver.telemetry's marker rows: source -> bronze_ingest_time -> silver_time ->
             gold commit (ingest/silver times are stamped when a micro-batch is planned, before
             its commit, so a layer's own write time is counted in the next layer's share)

The aim of the issue: p50 < 3 s, p99 < 10 s.
"""

from __future__ import annotations

import argparse
import importlib
import math
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

from plantlake.config import LakeSettings, Settings, load_settings
from plantlake.contracts import BRONZE_TELEMETRY, GOLD_TWIN_STATE, SILVER_TELEMETRY
from plantlake.ingest.records import Quality, Reading
from plantlake.ingest.simulator.plant import build_plant
from plantlake.pipelines.registry import REMOUNTS, registry_rows
from plantlake.services.kafka import admin_client, ensure_topics
from plantlake.services.minio import delta_rs_options
from plantlake.topics import TOPICS, topic

CANONICAL = {"temperature": "degC", "pressure": "bar", "current": "A", "flow": "m3/h", "speed": "rpm"}  # fmt: skip
BASE = {"temperature": 60.0, "pressure": 5.0, "current": 20.0, "flow": 30.0, "speed": 1480.0}
AIM_P50_S, AIM_P99_S = 3.0, 10.0
LAYERS = ("bronze", "silver", "gold")


def analog_sensors(seed: int) -> list[tuple[str, str, str]]:
    """(asset, sensor, quantity) of the registered analog sensors, never remounted."""
    remounted = {(r.asset, r.sensor) for r in REMOUNTS}
    return [
        (row["asset"], row["sensor"], row["quantity"])
        for row in registry_rows(build_plant(seed))
        if row["quantity"] in CANONICAL
        and row["valid_to"] is None
        and (row["asset"], row["sensor"]) not in remounted
    ]


def _reading(asset, sensor, quantity, *, sequence: int, rng: random.Random) -> bytes:
    now_ms = int(time.time() * 1000)
    value = BASE[quantity] * (1 + 0.02 * rng.random())  # varies: never a stuck sensor
    return Reading(asset, sensor, value, CANONICAL[quantity], Quality.GOOD, now_ms, now_ms + 1,
                   "opcua", "bench-freshness", sequence=sequence).to_record()  # fmt: skip


def produce_at_rate(kafka, topic_name: str, sensors, marker, args: dict, results) -> None:
    """Send `rate` readings a second for `seconds`, `marker_hz` of them for the marker sensor;
    put (sent, elapsed_s, marker event times) on `results`. Runs in its own process."""
    import orjson
    from confluent_kafka import Producer

    from plantlake.ingest.kafka_sink import producer_config

    producer = Producer(producer_config(kafka))
    rng = random.Random(7)
    rate, seconds, marker_every = args["rate"], args["seconds"], 1.0 / args["marker_hz"]
    sent, markers, failures = 0, [], []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    started = time.time()
    next_marker = started
    while (now := time.time()) < started + seconds:
        for _ in range(int((now - started) * rate) - sent):
            if time.time() >= next_marker:
                record = _reading(*marker, sequence=sent, rng=rng)
                markers.append(record["event_time_ms"])
                next_marker += marker_every
            else:
                record = _reading(*sensors[sent % len(sensors)], sequence=sent, rng=rng)
            producer.produce(topic_name, key=record["asset"].encode(), value=orjson.dumps(record),
                             on_delivery=on_delivery)  # fmt: skip
            sent += 1
        producer.poll(0)
        time.sleep(0.002)
    elapsed = time.time() - started
    unsent = producer.flush(60)
    results.put((sent - unsent - len(failures), elapsed, markers, failures[:3]))


class Lake:
    """deltalake reads of the bench lake: existence, the marker's twin-state row, versions."""

    def __init__(self, settings: Settings, marker) -> None:
        self.options = delta_rs_options(settings)
        self.lake = settings.lake
        self.marker = marker

    def uri(self, ref) -> str:
        return ref.path(self.lake).replace("s3a://", "s3://")

    def exists(self, ref) -> bool:
        """Whether the table has a first commit (is_deltatable is true as soon as the first
        commit's temporary file is in _delta_log, before Spark sees a table there)."""
        from deltalake.exceptions import TableNotFoundError

        try:
            self.table(ref)
        except TableNotFoundError:
            return False
        return True

    def table(self, ref):
        from deltalake import DeltaTable

        return DeltaTable(self.uri(ref), storage_options=self.options)

    def rows(self, ref) -> int:
        """Rows in a table's current version, from the log's file statistics."""
        actions = self.table(ref).get_add_actions(flatten=True)
        return sum(actions.column("num_records").to_pylist())

    def marker_rows(self, table, columns: list[str]):
        """The marker sensor's rows of a table (deltalake's filters only skip files)."""
        import pyarrow.compute as pc

        asset, sensor, _ = self.marker
        where = [("asset", "=", asset), ("sensor", "=", sensor)]
        rows = table.to_pyarrow_table(columns=["asset", "sensor", *columns], filters=where)
        mask = pc.and_(pc.equal(rows["asset"], asset), pc.equal(rows["sensor"], sensor))
        return rows.filter(mask).select(columns)

    def marker_time(self, twin) -> int | None:
        """The marker sensor's event_time_ms in one version of gold.twin_state."""
        values = self.marker_rows(twin, ["event_time_ms"]).column("event_time_ms").to_pylist()
        return max(values) if values else None


def bench_env(settings: Settings) -> dict[str, str]:
    """The environment that points a `plantlake` command at the bench's topics and lake."""
    return {
        **os.environ,
        "PLANTLAKE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "PLANTLAKE_LAKE__ROOT": settings.lake.root,
        "PLANTLAKE_LAKE__CHECKPOINT_ROOT": settings.lake.checkpoint_root,
    }


class Processes:
    """The layers as three `plantlake pipeline run LAYER` processes, each its own Spark session."""

    shape = "three processes, each a Spark session on local[2]"

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = bench_env(settings)
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def load_reference(self) -> None:
        subprocess.run(
            [sys.executable, "-c", "from plantlake.cli import main; main()", "reference", "load"],
            env=self.env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self, layer: str) -> None:
        log = (self.log_dir / f"{layer}.log").open("wb")
        self.procs[layer] = subprocess.Popen(
            [sys.executable, "-c", "from plantlake.cli import main; main()", "pipeline", "run",
             layer],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def ready(self, ref, lake: Lake) -> bool:
        return lake.exists(ref)

    def progress(self) -> str:
        return f"(layer logs in {self.log_dir})"

    def check(self) -> None:
        for layer, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{layer}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"the {layer} process exited ({proc.returncode}):\n{tail}")

    def stop(self) -> None:
        """Stop the processes this benchmark started (each with its JVM, in its own group)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Session:
    """The three layers' queries in one Spark session on local[2], in this process."""

    shape = "one Spark session on local[2], three streaming queries"

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        from plantlake.spark import get_spark

        self.settings = settings
        self.spark = get_spark(settings, app_name="plantlake-bench-freshness", master="local[2]")
        self.queries = {}

    def load_reference(self) -> None:
        from plantlake.pipelines.silver import load_reference

        load_reference(self.spark, self.settings, build_plant(self.settings.simulator.seed))

    def start(self, layer: str) -> None:
        module = importlib.import_module(f"plantlake.pipelines.{layer}")
        self.queries[layer] = module.run(self.spark, self.settings, once=False)

    def ready(self, ref, lake: Lake) -> bool:
        """Whether this session sees the table (it may lag a fresh reader by a few seconds)."""
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(self.spark, ref.path(self.settings.lake))

    def check(self) -> None:
        for layer, query in self.queries.items():
            if not query.isActive:
                raise SystemExit(f"the {layer} query stopped: {query.exception()}")

    def progress(self) -> str:
        """Each query's last micro-batch: id, rows read, seconds it took."""
        parts = []
        for layer, query in self.queries.items():
            last = query.lastProgress or {}
            took = last.get("durationMs", {}).get("triggerExecution", 0) / 1000
            parts.append(f"{layer} #{last.get('batchId', '-')} "
                         f"{last.get('numInputRows', 0):,} rows {took:.0f}s")  # fmt: skip
        return ", ".join(parts)

    def stop(self) -> None:
        for query in self.queries.values():
            query.stop()
        self.spark.stop()


def _wait_for(what: str, ready, pipeline, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        pipeline.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not appear within {timeout:.0f}s")
        time.sleep(1)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; inf (a marker never seen) sorts last."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _seconds(value: float) -> str:
    return "   never" if math.isinf(value) else f"{value:8.2f}"


def visibility(lake: Lake, markers: list[int]) -> dict[int, int]:
    """Marker event time -> commit time (ms) of the first twin-state version that shows it."""
    twin = lake.table(GOLD_TWIN_STATE)
    commits = {h["version"]: h["timestamp"] for h in twin.history()}
    pending, seen = sorted(markers), {}
    for version in sorted(commits):
        twin.load_as_version(version)
        newest = lake.marker_time(twin)
        while pending and newest is not None and pending[0] <= newest:
            seen[pending.pop(0)] = commits[version]
    return seen


def layer_times(lake: Lake, markers: list[int]) -> dict[int, tuple[int, int]]:
    """Marker event time -> (bronze_ingest_time, silver_time) in ms, from silver.telemetry."""
    rows = lake.marker_rows(
        lake.table(SILVER_TELEMETRY), ["event_time_ms", "bronze_ingest_time", "silver_time"]
    )
    wanted = set(markers)
    out = {}
    for row in rows.to_pylist():
        if row["event_time_ms"] in wanted:
            ingest, refined = row["bronze_ingest_time"], row["silver_time"]
            out[row["event_time_ms"]] = (ingest.timestamp() * 1000, refined.timestamp() * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000, help="readings a second")
    parser.add_argument("--seconds", type=float, default=180, help="how long to produce")
    parser.add_argument("--warmup", type=float, default=30, help="markers ignored at first")
    parser.add_argument("--drain", type=float, default=120, help="wait for the last marker")
    parser.add_argument("--marker-hz", type=float, default=5)
    parser.add_argument("--shape", choices=("session", "processes"), default="session",
                        help="the layers' queries in one Spark session, or three CLI processes")  # fmt: skip
    args = parser.parse_args()

    base = load_settings()
    run = uuid.uuid4().hex[:8]
    root = f"s3a://plantlake/bench/freshness-{run}"
    settings = base.model_copy(
        update={
            "lake": LakeSettings(root=root, checkpoint_root=f"{root}/_chk"),
            "kafka": base.kafka.model_copy(update={"topic_prefix": f"bench-{run}"}),
        }
    )
    sensors = analog_sensors(settings.simulator.seed)
    marker, sensors = sensors[0], sensors[1:]
    lake = Lake(settings, marker)
    name = topic("telemetry").name(settings.kafka.topic_prefix)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    ensure_topics(settings, lambda _: None)
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"lake {root}, topic {name}, logs {log_dir}\nstart: {uptime_start}")

    began = time.perf_counter()
    # One reading per sensor first, so each layer has a table to start from.
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    seed_args = {"rate": 2 * (len(sensors) + 1), "seconds": 1.0, "marker_hz": 1.0}
    seeding = ctx.Process(target=produce_at_rate,
                          args=(settings.kafka, name, sensors, marker, seed_args, results))  # fmt: skip
    seeding.start()
    results.get(timeout=120)
    seeding.join()
    pipeline = (Session if args.shape == "session" else Processes)(settings, log_dir)
    pipeline.load_reference()
    producer = None
    loads: list[float] = []
    polled: list[tuple[float, int]] = []
    try:
        pipeline.start("bronze")
        _wait_for("bronze.telemetry", lambda: pipeline.ready(BRONZE_TELEMETRY, lake), pipeline)
        pipeline.start("silver")
        _wait_for("silver.telemetry", lambda: pipeline.ready(SILVER_TELEMETRY, lake), pipeline)
        pipeline.start("gold")
        _wait_for(
            "the first marker in gold.twin_state",
            lambda: (
                lake.exists(GOLD_TWIN_STATE)
                and lake.marker_time(lake.table(GOLD_TWIN_STATE)) is not None
            ),
            pipeline,
        )
        print(f"pipeline up in {time.perf_counter() - began:.0f}s; producing {args.rate:,}/s "
              f"for {args.seconds:.0f}s (first {args.warmup:.0f}s not measured)")  # fmt: skip

        producer = ctx.Process(target=produce_at_rate,
                               args=(settings.kafka, name, sensors, marker, vars(args), results))  # fmt: skip
        producing_from = time.time()
        producer.start()
        twin = lake.table(GOLD_TWIN_STATE)
        deadline = producing_from + args.seconds + args.drain
        while time.time() < deadline:
            pipeline.check()
            twin.update_incremental()
            newest = lake.marker_time(twin)
            now = time.time()
            polled.append((now, newest or 0))
            loads.append(os.getloadavg()[0])
            if len(polled) % 15 == 0:
                lag = now - newest / 1000 if newest else math.inf
                print(f"  t+{now - producing_from:5.0f}s  twin-state lag {_seconds(lag)}s  "
                      f"load {loads[-1]:.2f}  twin v{twin.version()}  {pipeline.progress()}")  # fmt: skip
            produced_until = producing_from + args.seconds
            if now > produced_until and newest and newest / 1000 >= produced_until - 1:
                break  # the last markers are visible
            time.sleep(max(0.0, 1.0 - (time.time() - now)))
        sent, elapsed, markers, failures = results.get(timeout=120)
        producer.join()
        landed = {ref.name: lake.rows(ref) for ref in (BRONZE_TELEMETRY, SILVER_TELEMETRY)}
    finally:
        pipeline.stop()
        if producer is not None and producer.is_alive():
            producer.terminate()
        admin = admin_client(settings)
        for future in admin.delete_topics(
            [t.name(settings.kafka.topic_prefix) for t in TOPICS]
        ).values():
            future.result()
    uptime_end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    measured = [m for m in markers if m / 1000 >= producing_from + args.warmup]
    seen = visibility(lake, measured)
    latencies = [(seen[m] - m) / 1000 if m in seen else math.inf for m in measured]
    first_poll = {}
    for at, newest in polled:
        for m in measured:
            if m not in first_poll and m <= newest:
                first_poll[m] = at * 1000
    by_poll = [(first_poll[m] - m) / 1000 if m in first_poll else math.inf for m in measured]
    stamps = layer_times(lake, measured)
    shares = {"source -> bronze ingest": [], "bronze -> silver": [], "silver -> gold": []}
    for m in measured:
        if m in stamps and m in seen:
            ingest, refined = stamps[m]
            shares["source -> bronze ingest"].append((ingest - m) / 1000)
            shares["bronze -> silver"].append((refined - ingest) / 1000)
            shares["silver -> gold"].append((seen[m] - refined) / 1000)

    print(f"\nFreshness, source timestamp -> gold.twin_state; bronze, silver, gold as "
          f"{pipeline.shape}; Kafka + MinIO on this machine")  # fmt: skip
    print(
        f"input: {sent:,} readings acknowledged in {elapsed:.1f}s = {sent / elapsed:,.0f}/s "
        f"(asked {args.rate:,}/s){'; failures: ' + str(failures) if failures else ''}"
    )
    print(f"at stop: bronze.telemetry {landed[BRONZE_TELEMETRY.name]:,} rows, silver.telemetry "
          f"{landed[SILVER_TELEMETRY.name]:,} rows (of {sent:,} sent and a few seeds)")  # fmt: skip
    print(f"markers: {len(measured)} measured, {len(seen)} visible in gold, "
          f"{len(measured) - len(seen)} not visible within {args.drain:.0f}s after the producer stopped")  # fmt: skip
    print(f"{'latency (s)':<26}{'p50':>8}{'p99':>8}{'max':>8}{'p50/aim':>9}{'p99/aim':>9}")
    for label, values in (("source -> gold commit", latencies), ("(poll-observed, 1 Hz)", by_poll)):
        if values:
            p50, p99 = percentile(values, 50), percentile(values, 99)
            print(f"{label:<26}{_seconds(p50)}{_seconds(p99)}{_seconds(max(values))}"
                  f"{p50 / AIM_P50_S:>9.2f}{p99 / AIM_P99_S:>9.2f}")  # fmt: skip
    for label, values in shares.items():
        if values:
            p50, p99 = percentile(values, 50), percentile(values, 99)
            print(f"  {label:<24}{_seconds(p50)}{_seconds(p99)}{_seconds(max(values))}")
    print(f"(aim: p50 < {AIM_P50_S:.0f}s, p99 < {AIM_P99_S:.0f}s)")
    if loads:
        print(f"load average (1 min) while producing: mean {sum(loads) / len(loads):.2f}, "
              f"max {max(loads):.2f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"end: {uptime_end}")


if __name__ == "__main__":
    main()
