"""Prometheus metrics at /metrics, computed at scrape time from the figures /live shows
(workbench layer). No login, like any exporter: the workbench listens on loopback.

The lake is read at most once per `CACHE_SECONDS` however many scrapers ask: concurrent scrapes
wait for the one read in progress and share its answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plantlake.core.clock import now_ms
from plantlake.core.config import Settings
from plantlake.workbench.live_views import RUNNING, SILENT, PipelineHealth
from plantlake.workbench.routes_live import pipeline_health
from plantlake.workbench.twin_views import STATUS_ORDER

CACHE_SECONDS = 5.0
router = APIRouter()
_registry_lock = threading.Lock()


def metric_families(health: PipelineHealth) -> list[Metric]:
    """The metrics of one health snapshot. A figure nobody reported (a job with no backlog
    estimate, a buffer that could not be read) is left out rather than reported as 0."""
    g = GaugeMetricFamily
    edge_records = g(
        "plantlake_edge_buffer_records",
        "Records in an edge process's buffer, not yet in Kafka.",
        labels=["edge"],
    )
    edge_age = g(
        "plantlake_edge_buffer_oldest_age_seconds",
        "Age of the oldest record in an edge buffer (0 when empty).",
        labels=["edge"],
    )
    for edge in health.edges:
        if edge.buffered is not None:
            edge_records.add_metric([edge.node], edge.buffered)
            edge_age.add_metric([edge.node], edge.oldest_age_s or 0.0)
    duration = g(
        "plantlake_job_batch_duration_seconds",
        "Duration of a streaming job's last micro-batch.",
        labels=["job"],
    )
    rate = g(
        "plantlake_job_rows_per_second",
        "Rows per second a streaming job processed in its last micro-batch.",
        labels=["job"],
    )
    backlog = g(
        "plantlake_job_backlog",
        "What a job has still to read: Kafka offsets (the hot path's lag, bronze) or "
        "Delta versions.",
        labels=["job"],
    )
    age = g(
        "plantlake_job_last_progress_age_seconds",
        "Seconds since a job last reported progress.",
        labels=["job"],
    )
    running = g(
        "plantlake_job_running",
        "1 when a job says it runs and reports in time, else 0.",
        labels=["job"],
    )
    for job in health.jobs:
        running.add_metric([job.job], 1.0 if job.state == RUNNING else 0.0)
        # A job that stopped on purpose (`--once`) has no progress age: it is not silent.
        reporting_age = job.age_s if job.state in (RUNNING, SILENT) else None
        for family, value in ((duration, job.batch_duration_s), (rate, job.rows_per_second),
                              (backlog, job.backlog), (age, reporting_age)):  # fmt: skip
            if value is not None:
                family.add_metric([job.job], value)
    ratio = g(
        "plantlake_quarantine_failed_ratio",
        "Failed / checked rows per data-quality rule over the recent silver batches.",
        labels=["rule"],
    )
    for rule in health.rates.rules:
        ratio.add_metric([rule.rule], rule.ratio)
    families: list[Metric] = [edge_records, edge_age, duration, rate, backlog, age, running, ratio]
    if health.quarantine_open is not None:
        families.append(g("plantlake_quarantine_open",
                          "Quarantined readings no planner has decided on yet.",
                          value=health.quarantine_open))  # fmt: skip
    if health.twin is not None:
        sensors = g("plantlake_twin_sensors",
                    "Sensors by liveness in gold.twin_state (no_data: registered, never seen).",
                    labels=["status"])  # fmt: skip
        for status in STATUS_ORDER:
            sensors.add_metric([status], health.twin.sensor_counts.get(status, 0))
        dead = g(
            "plantlake_twin_dead_sensor", "1 for each dead sensor.", labels=["asset", "sensor"]
        )
        for sensor in health.twin.dead_sensors:
            dead.add_metric([sensor.asset, sensor.sensor], 1.0)
        families += [sensors, dead]
    families.append(g("plantlake_lake_read_errors",
                      "Lake tables the last health read could not read (0: all read).",
                      value=len(health.lake_errors)))  # fmt: skip
    return families


class CachedHealth:
    """A health snapshot reused for `ttl_s`; loading happens under a lock, so a burst of scrapes
    reads the lake once."""

    def __init__(self, load: Callable[[], PipelineHealth], *, ttl_s: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self._load, self._ttl_s, self._clock = load, ttl_s, clock
        self._lock = threading.Lock()
        self._value: PipelineHealth | None = None
        self._at = 0.0

    def get(self) -> PipelineHealth:
        with self._lock:
            if self._value is None or self._clock() - self._at >= self._ttl_s:
                self._value = self._load()
                self._at = self._clock()
            return self._value


class PipelineCollector(Collector):
    """A prometheus_client collector that builds every metric from a fresh (or cached) snapshot
    at scrape time."""

    def __init__(self, health: Callable[[], PipelineHealth]):
        self._health = health

    def describe(self) -> Iterable[Metric]:
        return []  # no scrape at registration time: the metrics are only known at collect

    def collect(self) -> Iterable[Metric]:
        return metric_families(self._health())


def metrics_registry(settings: Settings) -> CollectorRegistry:
    """A registry of our own (not the process-global one) holding the pipeline collector."""
    cache = CachedHealth(lambda: pipeline_health(settings, at_ms=now_ms()))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(cache.get))
    return registry


def _registry(request: Request) -> CollectorRegistry:
    state = request.app.state
    with _registry_lock:
        registry = getattr(state, "metrics_registry", None)
        if registry is None:
            registry = state.metrics_registry = metrics_registry(state.settings)
    return registry


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format; no login (loopback only, like any exporter)."""
    return Response(generate_latest(_registry(request)), media_type=CONTENT_TYPE_LATEST)
