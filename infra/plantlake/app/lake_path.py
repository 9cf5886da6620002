"""`plantlake pipeline up`: the whole lake path as it is deployed, with a live status line.

- the hot path (Kafka -> gold.twin_state, no Spark) in a process of its own at normal priority;
- in this process, at a lower priority (`pipeline.spark_nice`), one Spark session with the FAIR
  scheduler running bronze (Kafka -> bronze tables) and the cold path (silver + aggregates) as
  continuous queries, and gold.features as an availableNow run every `features_every_minutes`.
Ctrl-C (or SIGTERM) stops the queries between batches and asks the hot path to make its last
commit; checkpoints and committed offsets make the next `up` continue where this one stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from plantlake.adapters.batch_errors import await_query, own_error
from plantlake.adapters.checkpoints import adopt_legacy_checkpoints
from plantlake.adapters.restarts import backoff_s, failed_for_good, failure_reason
from plantlake.app.query_watch import DeltaVersions, QueryWatch
from plantlake.core.config import Settings
from plantlake.core.errors import PlantlakeError, SourceError
from plantlake.services.minio import delta_rs_options

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery


def _hot_path_process(settings: Settings, log: Path) -> subprocess.Popen:
    executable = shutil.which("plantlake") or str(Path(sys.executable).parent / "plantlake")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [executable, "pipeline", "run", "hot"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches it through us, after the Spark side stops
        )  # fmt: skip


class FeatureSchedule(threading.Thread):
    """Runs gold.features (availableNow) every `every_s` seconds until stopped, each batch's rows
    handed to `on_features` (the scoring hook)."""

    def __init__(self, spark, settings: Settings, every_s: float, on_features=None):
        super().__init__(name="features-schedule", daemon=True)
        self.spark, self.settings, self.every_s = spark, settings, every_s
        self.on_features = on_features
        self.stopped = threading.Event()
        self.runs = 0
        self.last: str = "waiting for silver"
        self.query: StreamingQuery | None = None  # the latest run, for its progress file
        self.error: BaseException | None = None

    def run(self) -> None:
        from plantlake.pipelines.jobs import gold_features

        while not self.stopped.is_set():
            started = time.monotonic()
            try:
                self.query = gold_features.run(self.spark, self.settings, once=True,
                                               on_features=self.on_features)  # fmt: skip
                await_query(self.query)
                self.runs += 1
                self.last = f"run {self.runs} took {time.monotonic() - started:.0f} s"
            except SourceError:
                self.last = "waiting for silver.telemetry"
            except BaseException as exc:  # noqa: BLE001 - reported by the status loop
                if not self.stopped.is_set():
                    self.error = exc
                return
            self.stopped.wait(max(0.0, self.every_s - (time.monotonic() - started)))


def _query_row(query) -> tuple[str, str, str, str]:
    progress = query.lastProgress or {}
    batch = progress.get("batchId", "-")
    rate = progress.get("processedRowsPerSecond")
    took = (progress.get("durationMs") or {}).get("triggerExecution")
    behind = None
    for source in progress.get("sources") or []:
        metrics = source.get("metrics") or {}
        if "maxOffsetsBehindLatest" in metrics:
            behind = f"{int(float(metrics['maxOffsetsBehindLatest'])):,} offsets/partition"
        elif "numFilesOutstanding" in metrics:
            behind = f"{metrics['numFilesOutstanding']} files"
    return (
        str(batch),
        f"{rate:,.0f} rows/s" if rate is not None else "-",
        f"{took / 1000:.1f} s" if took is not None else "-",
        behind or "-",
    )


def status_table(queries, hot: dict | None, hot_alive: bool, features: FeatureSchedule) -> Table:
    table = Table(title=f"plantlake lake path, {time.strftime('%H:%M:%S')} (Ctrl-C stops)")
    for column in ("path", "batches/commits", "throughput", "last batch", "lag", "freshness"):
        table.add_column(column)
    if hot is None:
        table.add_row("hot", "-", "-", "-", "-", "starting" if hot_alive else "[red]not running")
    else:
        age = (time.time() * 1000 - (hot.get("last_commit_ms") or 0)) / 1000
        fresh = (
            f"p50 {hot['freshness_p50_s']:.2f} s, p99 {hot['freshness_p99_s']:.2f} s"
            if hot.get("freshness_p50_s") is not None
            else "-"
        )
        state = "" if hot_alive else "[red]stopped "
        table.add_row("hot", f"{state}{hot['commits']}", f"{hot['readings']:,} readings",
                      f"twin {age:.1f} s ago", f"{hot['lag']:,} readings", fresh)  # fmt: skip
    for query in queries:
        table.add_row(query.name, *_query_row(query), "-")
    table.add_row("features", str(features.runs), "-", features.last, "-", "-")
    return table


def query_failure(query, error: BaseException | None) -> PlantlakeError:
    """What `pipeline up` raises for a query that stopped for good: the PlantlakeError a
    micro-batch raised (a failed `fail` rule) as itself, else one naming the query and quoting
    Spark's failure."""
    own = own_error(query, error) if error is not None else None
    if own is not None:
        own.__cause__ = error
        return own
    stopped = PlantlakeError(
        f"The {query.name} query stopped: {error}"
        if error is not None
        else f"The {query.name} query stopped without an error.",
        hint="Its log is above; fix the cause and run `pipeline up` again.",
    )
    stopped.__cause__ = error
    return stopped


def run_lake_path(settings: Settings, *, console: Console, hot: bool = True) -> None:
    """Run the lake path until Ctrl-C or SIGTERM (see the module doc); raises the first failure."""
    from plantlake.adapters.spark import get_spark
    from plantlake.app.jobs import hot_path_status_file, scoring_hook
    from plantlake.pipelines.jobs import bronze, cold_path

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    status_file = hot_path_status_file(settings)
    status_file.unlink(missing_ok=True)
    hot_process = _hot_path_process(settings, settings.logs / "hot-path.log") if hot else None
    # The JVM inherits this niceness: the Spark side yields the CPU to the hot path.
    os.nice(settings.pipeline.spark_nice)
    adopt_legacy_checkpoints(settings, console.print)
    spark = get_spark(settings, app_name="plantlake-lake-path")
    starters = {
        "bronze": lambda: bronze.run(spark, settings, once=False),
        "cold": lambda: cold_path.run(spark, settings, once=False),
    }
    restarts: dict[str, int] = {}
    queries = [starters["bronze"]()]
    every_s = settings.pipeline.features_every_minutes * 60
    features = FeatureSchedule(spark, settings, every_s, on_features=scoring_hook(settings))
    # Each query's progress file at every batch (the workbench's /live and /metrics read them).
    watch = QueryWatch(settings.home, table_version=DeltaVersions(delta_rs_options(settings)))
    failure: BaseException | None = None
    try:
        with Live(console=console, refresh_per_second=1, transient=False) as live:
            while not stop.wait(2.0):
                if len(queries) == 1:  # the cold path needs bronze's first commit
                    try:
                        queries.append(cold_path.run(spark, settings, once=False))
                        features.start()
                    except SourceError:
                        pass
                for i, query in enumerate(queries):
                    if query.exception() is None and query.isActive:
                        continue
                    error = query.exception()
                    count = 1 if query.recentProgress else restarts.get(query.name, 0) + 1
                    if (error is None or failed_for_good(error)
                            or count > settings.pipeline.restarts):  # fmt: skip
                        raise query_failure(query, error)
                    restarts[query.name] = count
                    wait_s = backoff_s(count)
                    console.print(f"{query.name} failed ({failure_reason(error)}); restart "
                                  f"{count} of {settings.pipeline.restarts} in {wait_s}s")  # fmt: skip
                    if stop.wait(wait_s):
                        break
                    queries[i] = starters[query.name]()
                if features.error is not None:
                    raise features.error
                watch.follow([*queries, features.query])
                watch.poll()
                hot_alive = hot_process is None or hot_process.poll() is None
                try:
                    hot_status = orjson.loads(status_file.read_bytes())
                except (OSError, orjson.JSONDecodeError):
                    hot_status = None
                live.update(status_table(queries, hot_status, hot_alive, features))
                if hot_process is not None and not hot_alive:
                    raise PlantlakeError(
                        f"The hot path exited with {hot_process.returncode}.",
                        log=settings.logs / "hot-path.log",
                    )
    except BaseException as exc:
        failure = exc
    finally:
        console.print("stopping: queries between batches, then the hot path's last commit")
        features.stopped.set()
        for query in queries:
            query.stop()
        watch.close()
        if hot_process is not None and hot_process.poll() is None:
            hot_process.send_signal(signal.SIGTERM)
            try:
                hot_process.wait(60)
            except subprocess.TimeoutExpired:
                hot_process.kill()
    if failure is not None and not isinstance(failure, KeyboardInterrupt):
        raise failure
