"""The local stack as a whole: install what is missing, start in dependency order, report, stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from plantlake.core.config import Settings
from plantlake.core.errors import ConfigError
from plantlake.services import process
from plantlake.services.base import Health, Service
from plantlake.services.jars import ensure_spark_jars
from plantlake.services.java import java_home
from plantlake.services.kafka import KafkaService
from plantlake.services.minio import MinioService
from plantlake.services.mlflow_server import MlflowService
from plantlake.services.mosquitto import MosquittoService
from plantlake.services.spark_cluster import SparkMasterService, SparkWorkerService
from plantlake.services.workbench import WorkbenchService

# Start order: MLflow keeps artifacts in MinIO; the workbench reads the lake in MinIO (and needs
# no Spark); the worker registers with the master.
ORDER: tuple[type[Service], ...] = (
    MinioService,
    KafkaService,
    MosquittoService,
    MlflowService,
    WorkbenchService,
    SparkMasterService,
    SparkWorkerService,
)
NAMES = tuple(cls.name for cls in ORDER)


def services(settings: Settings, names: Sequence[str] = ()) -> list[Service]:
    unknown = set(names) - set(NAMES)
    if unknown:
        raise ConfigError(f"Unknown service(s) {sorted(unknown)}; plantlake runs {list(NAMES)}.")
    return [cls(settings) for cls in ORDER if not names or cls.name in names]


class _Reporter:
    """Progress for long steps: a live spinner on a terminal, a line every 15 s in a CI log."""

    def __init__(self, console: Console, progress: Progress | None):
        self.console = console
        self.progress = progress
        self._lock = threading.Lock()

    def step(self, title: str) -> Callable[[str], None]:
        task = self.progress.add_task(title, total=None) if self.progress else None
        last = [0.0]

        def report(line: str) -> None:
            with self._lock:
                if self.progress is not None and task is not None:
                    self.progress.update(task, description=f"{title}: {line[:90]}")
                elif time.monotonic() - last[0] > 15:
                    last[0] = time.monotonic()
                    self.console.print(f"  {title}: {line[:160]}", highlight=False)

        return report


def install(settings: Settings, selected: Sequence[Service], console: Console) -> None:
    """Install everything missing, the slow downloads and builds in parallel."""
    steps: list[tuple[str, Callable]] = [
        ("Spark jars (Maven)", lambda r: ensure_spark_jars(settings, r))
    ]
    steps += [(f"{svc.name}", svc.install) for svc in selected if svc.managed]
    if any(
        svc.managed and svc.name in ("kafka", "spark-master", "spark-worker") for svc in selected
    ):
        java_home()
    interactive = console.is_terminal
    progress = (
        Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                 console=console, transient=True)
        if interactive else None
    )  # fmt: skip
    reporter = _Reporter(console, progress)
    started = time.monotonic()

    def run(title: str, fn: Callable) -> None:
        fn(reporter.step(f"installing {title}"))

    if progress:
        progress.start()
    try:
        with ThreadPoolExecutor(max_workers=len(steps)) as pool:
            futures = [pool.submit(run, title, fn) for title, fn in steps]
            for future in futures:
                future.result()
    finally:
        if progress:
            progress.stop()
    elapsed = time.monotonic() - started
    if elapsed > 5:
        console.print(f"[green]installed[/] what was missing in {elapsed:.0f}s")


def start(settings: Settings, svc: Service, console: Console) -> Health:
    """Start one service unless it already runs; then create what plantlake declares in it."""

    def say(line: str) -> None:
        console.print(f"  {svc.name}: {line}", highlight=False)

    if not svc.managed:
        health = svc.health()
        if health.up:
            svc.configure(say)
        else:
            console.print(f"[yellow]{svc.name}[/] is not managed by plantlake and is down: "
                          f"{health.detail}")  # fmt: skip
        return health
    pid = process.read_pid(svc.pidfile)
    if pid is None:
        process.check_ports_free(svc.name, svc.ports(), svc.port_setting)
        svc.prepare(say)
        started = time.monotonic()
        pid = process.spawn(svc.launch())
        detail = process.wait_until(
            svc.name, svc.probe, pid=pid, log=svc.log, timeout=svc.start_timeout
        )
        console.print(f"[green]started[/] {svc.name} at {svc.endpoint()} "
                      f"({detail}, {time.monotonic() - started:.1f}s)")  # fmt: skip
    else:
        detail = process.wait_until(
            svc.name, svc.probe, pid=pid, log=svc.log, timeout=svc.start_timeout
        )
        console.print(f"[dim]already up[/] {svc.name} at {svc.endpoint()} ({detail})")
    svc.configure(say)
    return svc.health()


def up(settings: Settings, names: Sequence[str], console: Console) -> list[Health]:
    selected = services(settings, names)
    install(settings, selected, console)
    return [start(settings, svc, console) for svc in selected]


def down(settings: Settings, names: Sequence[str], console: Console) -> None:
    for svc in reversed(services(settings, names)):
        if not svc.managed:
            continue
        if process.stop(svc.pidfile):
            console.print(f"stopped {svc.name}")
        else:
            console.print(f"[dim]{svc.name} was not running[/]")


def status(settings: Settings, names: Sequence[str] = ()) -> list[Health]:
    return [svc.health() for svc in services(settings, names)]


def render_status(healths: Sequence[Health], console: Console) -> None:
    from rich.table import Table

    table = Table("service", "status", "endpoint", "detail")
    table.columns[2].no_wrap = True
    for h in healths:
        state = "[green]up[/]" if h.up else "[red]down[/]"
        managed = "" if h.managed else " (not managed by plantlake)"
        table.add_row(h.name, state, h.endpoint, h.detail[:120] + managed)
    console.print(table)
    logs = {str(Path(h.log).parent) for h in healths if h.log}
    if logs:
        console.print(f"[dim]logs: {', '.join(sorted(logs))}[/]")
