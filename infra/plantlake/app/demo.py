"""The end-to-end demo: the simulated plant on real protocols, edge processes into Kafka, the bronze
job into Delta on MinIO, and what landed, read back."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from plantlake.app.edge_sources import edge_window_features
from plantlake.core.clock import now_ms
from plantlake.core.config import Settings
from plantlake.core.contracts import BRONZE_DEAD_LETTER, BRONZE_TELEMETRY, RECORD_SCHEMA_VERSION
from plantlake.core.errors import PlantlakeError
from plantlake.core.topics import topic

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


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from plantlake.app.cli import main; main()", *args]


def run_edge_processes(
    settings: Settings, console: Console, *, seconds: float, log_dir: Path
) -> None:
    """Run `plantlake simulate` and one `plantlake ingest` per source for `seconds`, then stop them."""
    from plantlake.app.edge_sources import SOURCES

    log_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    handles = []
    try:
        for name, args in [("simulate", ("simulate",)), *((s, ("ingest", s)) for s in SOURCES)]:
            handle = (log_dir / f"demo-{name}.log").open("wb")
            handles.append(handle)
            procs[name] = subprocess.Popen(_cli(*args), stdout=handle, stderr=subprocess.STDOUT)
            if name == "simulate":
                time.sleep(3)  # device servers bind before their clients connect
        console.print(f"running the simulated plant and {len(SOURCES)} edge processes for {seconds:.0f}s "
                      f"(logs: {log_dir}/demo-*.log) ...")  # fmt: skip
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            failed = [n for n, p in procs.items() if p.poll() is not None]
            if failed:
                raise PlantlakeError(
                    f"The demo's {', '.join(failed)} process exited early.",
                    hint=f"See {log_dir}/demo-{failed[0]}.log.",
                )
            time.sleep(1)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for handle in handles:
            handle.close()


def _silver_and_gold(spark, settings: Settings, console: Console, *, started_ms: int) -> None:
    """Refine what landed: silver (units, registry, rules, quarantine), gold (aggregates), and the
    hot path's twin state."""
    from pyspark.sql import functions as F

    from plantlake.adapters.batch_errors import await_query
    from plantlake.adapters.delta import read_delta
    from plantlake.app.demo_rules import print_rule_report
    from plantlake.app.registry_files import load_simulated_plant
    from plantlake.core.contracts import GOLD_TWIN_STATE, SILVER_TELEMETRY
    from plantlake.pipelines.jobs import gold, silver
    from plantlake.pipelines.jobs.hot_path import HotPath
    from plantlake.simulator.plant import build_plant
    from plantlake.simulator.registry import plant_registry_entries

    plant = build_plant(settings.simulator.seed)
    path, count, load = load_simulated_plant(
        spark, settings, plant_registry_entries(plant, edge_window_features(settings))
    )
    console.print(f"imported the simulated plant's registry {path} ({count} entries, "
                  f"{load.inserted} new) into reference.asset_registry, as a site imports its own")  # fmt: skip
    silver_began_ms = now_ms()
    for name, layer in (("silver", silver), ("gold", gold)):
        began = time.monotonic()
        await_query(layer.run(spark, settings, once=True))
        console.print(f"{name} job finished in {time.monotonic() - began:.1f}s")
    began = time.monotonic()
    stats = HotPath(settings, log=lambda _line: None).run(once=True)
    console.print(f"hot path caught up in {time.monotonic() - began:.1f}s: {stats.summary()}")

    fresh = F.col("receive_time") >= F.timestamp_millis(F.lit(started_ms))
    kept = read_delta(spark, SILVER_TELEMETRY.path(settings.lake)).where(fresh)
    converted = (
        kept.where(F.col("source_unit") != F.col("unit"))
        .groupBy("source_unit", "unit").agg(F.count("*").alias("rows")).orderBy("source_unit").collect()
    )  # fmt: skip
    console.print(f"silver.telemetry: {kept.count()} readings in canonical units; converted: "
                  + ", ".join(f"{r.source_unit}->{r.unit} ({r.rows})" for r in converted))  # fmt: skip
    print_rule_report(spark, settings, console, started_ms=started_ms,
                      silver_began_ms=silver_began_ms)  # fmt: skip
    states = (
        read_delta(spark, GOLD_TWIN_STATE.path(settings.lake))
        .groupBy("status").agg(F.count("*").alias("sensors")).orderBy("status").collect()
    )  # fmt: skip
    console.print(
        "gold.twin_state: " + ", ".join(f"{r.sensors} sensors {r.status}" for r in states)
    )


def run_demo(
    settings: Settings, console: Console, *, seconds: float = 40.0, ml: bool = True
) -> int:
    """The plant on OPC-UA, Modbus and Sparkplug B through edge processes into Kafka, then the
    bronze job into Delta on MinIO; prints what landed, per protocol, and the dead letters."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from plantlake.adapters.batch_errors import await_query
    from plantlake.adapters.checkpoints import adopt_legacy_checkpoints
    from plantlake.adapters.delta import read_delta
    from plantlake.adapters.kafka import produce_raw
    from plantlake.adapters.spark import get_spark
    from plantlake.pipelines.jobs import bronze

    run_id = uuid.uuid4().hex[:8]
    started_ms = now_ms()
    run_edge_processes(settings, console, seconds=seconds, log_dir=settings.logs)
    telemetry_topic = topic("telemetry").name(settings.kafka.topic_prefix)
    # One malformed record, as a misbehaving producer would send, to show the dead letter path.
    produce_raw(settings.kafka, telemetry_topic, b"plant1/line1/press-01",
                f'{{"asset": "plant1/line1/press-01", "demo_run": "{run_id}", "value": "oops"'.encode())  # fmt: skip

    console.print("running the bronze job once (availableNow) ...")
    adopt_legacy_checkpoints(settings, console.print)
    spark = get_spark(settings, app_name="plantlake-demo")
    began = time.monotonic()
    await_query(bronze.run(spark, settings, once=True))
    console.print(f"bronze job finished in {time.monotonic() - began:.1f}s")

    path = BRONZE_TELEMETRY.path(settings.lake)
    landed = read_delta(spark, path).where(F.col("receive_time_ms") >= started_ms)
    summary = (
        landed.groupBy("source_protocol")
        .agg(F.count("*").alias("rows"), F.countDistinct("asset").alias("assets"),
             F.countDistinct("sensor").alias("sensors"), F.max("event_time").alias("latest"))
        .orderBy("source_protocol")
        .collect()
    )  # fmt: skip
    table = Table(title=f"bronze.telemetry at {path}: what this demo landed")
    for name in ("source", "rows", "assets", "sensors", "latest event time"):
        table.add_column(name)
    for row in summary:
        table.add_row(
            row.source_protocol, str(row.rows), str(row.assets), str(row.sensors), str(row.latest)
        )
    console.print(table)

    window = Window.partitionBy("asset", "sensor").orderBy(F.col("event_time").desc())
    latest = (
        landed.where(~F.col("sensor").contains("."))
        .withColumn("n", F.row_number().over(window)).where("n = 1")
        .where(F.col("sensor").isin("bearing_temperature", "discharge_pressure", "hydraulic_pressure"))
        .orderBy("asset", "sensor")
        .select("asset", "sensor", "value", "unit", "quality", "source_protocol", "event_time")
        .collect()
    )  # fmt: skip
    sample = Table(
        title="latest readings, in the units the devices report (silver will normalise them)"
    )
    for name in ("asset", "sensor", "value", "unit", "quality", "via", "event time"):
        sample.add_column(name)
    for row in latest:
        value = "NaN/null" if row.value is None else f"{row.value:.2f}"
        sample.add_row(row.asset, row.sensor, value, row.unit or "", row.quality, row.source_protocol,
                       str(row.event_time))  # fmt: skip
    console.print(sample)

    dead = (
        read_delta(spark, BRONZE_DEAD_LETTER.path(settings.lake))
        .where(F.col("raw_value").cast("string").contains(run_id))
        .select("reason").collect()
    )  # fmt: skip
    for row in dead:
        console.print(f"bronze.dead_letter holds the malformed record: [yellow]{row.reason}[/]")
    _silver_and_gold(spark, settings, console, started_ms=started_ms)
    history_lake = None
    if ml:
        from plantlake.app.demo_ml import run_ml_demo

        history_lake = run_ml_demo(spark, settings, console)
    waiting = open_quarantine(spark, settings)
    spark.stop()
    protocols = {row.source_protocol for row in summary}
    expected = {"opcua", "modbus", "sparkplug"}
    code = 0
    if not expected <= protocols or len(dead) != 1:
        console.print(f"[red]expected rows from {sorted(expected)} and 1 dead letter; "
                      f"found {sorted(protocols)} and {len(dead)}[/]")  # fmt: skip
        code = 1
    else:
        total = sum(row.rows for row in summary)
        console.print(
            f"[green]{total} readings from {len(protocols)} protocols landed in bronze on the lake.[/]"
        )
    print_workbench(settings, console, waiting=waiting, history_lake=history_lake)
    return code


def open_quarantine(spark, settings: Settings) -> int | None:
    """Quarantined readings no planner has decided on yet; None before silver made the table."""
    from plantlake.adapters.delta import read_delta, table_exists
    from plantlake.core.contracts import SILVER_QUARANTINE

    path = SILVER_QUARANTINE.path(settings.lake)
    if not table_exists(spark, path):
        return None
    return read_delta(spark, path).where("review_status = 'open'").count()


def print_workbench(
    settings: Settings, console: Console, *, waiting: int | None, history_lake: str | None = None
) -> None:
    """Where the planners' workbench is, how to log in, and what waits there for review; and how
    to browse the work orders of the demo's month of history, which has a lake of its own."""
    from plantlake.app.local_secrets import workbench_logins_file
    from plantlake.services.workbench import WorkbenchService

    service = WorkbenchService(settings)
    url = service.endpoint()
    running = service.health().up
    state = "" if running else " [yellow](not running: `plantlake up workbench` starts it)[/]"
    console.print(f"\n[bold]The planners' workbench:[/] {url}{state}")
    users = settings.workbench.users
    logins_file = workbench_logins_file(settings.home)
    try:
        generated = json.loads(logins_file.read_text())
    except (OSError, ValueError):
        generated = {}
    # Only the generated logins the settings still hold (a site may have set its own users).
    logins = {name: pw for name, pw in generated.items() if name in users}
    for name, password in logins.items():
        role = users[name].role
        what = "decides" if role == "planner" else "reads only"
        console.print(
            f"  log in as [bold]{escape(name)}[/] / {escape(password)}  ({role}: {what})",
            highlight=False,
        )
    if not logins:
        console.print(
            f"  log in as one of your users: {escape(', '.join(sorted(users)))}" if users else
            "  no workbench users are set: `plantlake up` generates a planner and a viewer "
            f"(passwords in {logins_file}); `plantlake app-password NAME --role planner` "
            "prints the settings for your own",
            highlight=False,
        )  # fmt: skip
    if waiting is not None:
        console.print(f"  {waiting} quarantined readings wait for review at {url}/quarantine")
    if history_lake is not None:
        port = settings.workbench.port + 1
        console.print(
            f"  the month of history's work orders are in the lake {history_lake}; browse them "
            f"with `PLANTLAKE_LAKE__ROOT={history_lake} plantlake app --port {port}` "
            f"(same logins, http://{settings.workbench.host}:{port}/work-orders)",
            highlight=False,
            soft_wrap=True,
        )
