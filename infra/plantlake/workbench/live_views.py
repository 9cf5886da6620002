"""Pipeline health as /live and /metrics show it: edge buffers, job progress, the hot path,
quarantine rates per rule and twin liveness counts (workbench layer, pure view-model logic over
status files and frames already read).

Nothing here fails on missing input: a process that wrote no status file is "not running", a
table not written yet is "no data"; a status that stopped moving is flagged, never shown as fine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from plantlake.core.config import PipelineSettings
from plantlake.workbench.display import format_age, format_time, number, text, to_ms
from plantlake.workbench.twin_views import TwinOverview

# The forwarder rewrites its status every second and the hot path every 2 s: past these, the
# process is not writing any more (stopped or hung).
FORWARDER_SILENT_S = 15.0
HOT_PATH_SILENT_S = 30.0
# A record this old still in an edge buffer means Kafka is not taking them.
EDGE_BACKLOG_WARN_S = 60.0
# A running job reports every batch (and Spark's idle progress every 10 s): a few triggers
# without a report, and never less than this, means it is stuck or died without saying so.
JOB_SILENT_MIN_S = 120.0
RECENT_DQ_BATCHES = 20
HOT_PATH_JOB = "hot-path"

RUNNING, STOPPED, NOT_RUNNING, SILENT = "running", "stopped", "not running", "not reporting"


@dataclass(frozen=True)
class EdgeRow:
    """One edge process: its buffer (what waits for Kafka) and its forwarder's counters."""

    node: str
    buffered: int | None  # None: no buffer file, or it could not be read
    oldest_age_s: float | None  # of the oldest buffered record; None when empty
    state: str
    sent: int | None = None
    dead_letters: int | None = None
    last_error: str | None = None
    status_age_s: float | None = None
    problem: str | None = None

    @property
    def oldest_text(self) -> str:
        return format_age(self.oldest_age_s)

    @property
    def status_age_text(self) -> str:
        return format_age(self.status_age_s)


def edge_rows(
    forwarders: Mapping[str, tuple[Mapping[str, Any] | None, int | None]],
    buffers: Mapping[str, tuple[int, int | None] | None],
    *,
    now_ms: int,
) -> list[EdgeRow]:
    """Edge processes from their forwarder status files (node -> (status JSON or None when
    unreadable, file mtime ms)) and buffers (node -> (records waiting, oldest creation ms), or
    None when unreadable). Problems first, then by name."""
    rows = []
    for node in sorted(set(forwarders) | set(buffers)):
        status, mtime_ms = forwarders.get(node, (None, None))
        pending = buffers.get(node)
        buffered, oldest_ms = pending if pending is not None else (None, None)
        status_age = None if mtime_ms is None else (now_ms - mtime_ms) / 1000
        oldest_age = None if oldest_ms is None or not buffered else (now_ms - oldest_ms) / 1000
        problems = []
        if node not in forwarders:
            # A forwarder thread (edge.forwarder = "thread") writes no status file.
            state = "no forwarder status"
        elif status_age is not None and status_age > FORWARDER_SILENT_S:
            state = NOT_RUNNING
            if buffered:
                problems.append(f"{buffered} records wait and no forwarder is sending them")
        else:
            state = RUNNING
        if oldest_age is not None and oldest_age > EDGE_BACKLOG_WARN_S:
            problems.append(f"the oldest buffered record is {format_age(oldest_age)} old")
        last_error = text((status or {}).get("last_error"))
        if last_error and buffered and state == RUNNING:
            problems.append(f"Kafka: {last_error}")
        rows.append(
            EdgeRow(
                node=node,
                buffered=buffered,
                oldest_age_s=oldest_age,
                state=state,
                sent=_int((status or {}).get("sent")),
                dead_letters=_int((status or {}).get("dead_letters")),
                last_error=last_error,
                status_age_s=status_age,
                problem="; ".join(problems) or None,
            )
        )
    rows.sort(key=lambda r: (r.problem is None, r.node))
    return rows


def _int(value: Any) -> int | None:
    result = number(value)
    return None if result is None else int(result)


@dataclass(frozen=True)
class JobRow:
    """A streaming job's (or the hot path's) latest progress."""

    job: str
    state: str
    age_s: float | None  # since its last report
    batch_id: int | None = None
    batches: int | None = None
    rows: int | None = None
    rows_per_second: float | None = None
    batch_duration_s: float | None = None
    backlog: int | None = None
    problem: str | None = None

    @property
    def age_text(self) -> str:
        return format_age(self.age_s)


_TRIGGER = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(second|minute|hour)s?\s*", re.IGNORECASE)
_UNIT_S = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


def trigger_seconds(trigger: str) -> float | None:
    """A Spark processingTime ("10 seconds", "1 minute") in seconds; None if not of that form."""
    match = _TRIGGER.fullmatch(trigger)
    return float(match[1]) * _UNIT_S[match[2].lower()] if match else None


def job_silent_after_s(job: str, pipeline: PipelineSettings) -> float:
    """How long a running job may go without a progress report before it is flagged."""
    trigger = getattr(pipeline, f"{job}_trigger", None)
    seconds = trigger_seconds(trigger) if isinstance(trigger, str) else None
    return max(JOB_SILENT_MIN_S, 4 * seconds) if seconds else JOB_SILENT_MIN_S


def job_row(progress: Mapping[str, Any], *, now_ms: int, silent_after_s: float) -> JobRow:
    """A row from a `job-<job>.json` progress file (format in the workbench design)."""
    updated = to_ms(progress.get("updated_at_ms"))
    age = None if updated is None else (now_ms - updated) / 1000
    duration_ms = number(progress.get("batch_duration_ms"))
    problem = None
    if not progress.get("running"):
        state = STOPPED
    elif age is None or age > silent_after_s:
        state = SILENT
        problem = f"no progress for {format_age(age)}; the job may have died"
    else:
        state = RUNNING
    return JobRow(
        job=str(progress.get("job") or "?"),
        state=state,
        age_s=age,
        batch_id=_int(progress.get("batch_id")),
        batches=_int(progress.get("batches")),
        rows=_int(progress.get("rows")),
        rows_per_second=number(progress.get("rows_per_second")),
        batch_duration_s=None if duration_ms is None else duration_ms / 1000,
        backlog=_int(progress.get("backlog")),
        problem=problem,
    )


def hot_path_row(status: Mapping[str, Any] | None, *, now_ms: int) -> JobRow:
    """The hot path from its status file (rewritten every 2 s while it runs); None: no file."""
    if status is None:
        return JobRow(HOT_PATH_JOB, NOT_RUNNING, None, problem="no status file: not running")
    at = to_ms(status.get("at_ms"))
    age = None if at is None else (now_ms - at) / 1000
    silent = age is None or age > HOT_PATH_SILENT_S
    return JobRow(
        job=HOT_PATH_JOB,
        state=SILENT if silent else RUNNING,
        age_s=age,
        batches=_int(status.get("commits")),
        rows=_int(status.get("readings")),
        backlog=_int(status.get("lag")),
        problem=f"no status for {format_age(age)}; the twin is not being updated"
        if silent
        else None,
    )


def job_rows(
    progress: Sequence[Mapping[str, Any]],
    hot_path: Mapping[str, Any] | None,
    *,
    now_ms: int,
    pipeline: PipelineSettings,
) -> list[JobRow]:
    """The hot path, then every job that wrote a progress file, by name."""
    jobs = [
        job_row(p, now_ms=now_ms, silent_after_s=job_silent_after_s(str(p.get("job")), pipeline))
        for p in progress
    ]
    return [hot_path_row(hot_path, now_ms=now_ms), *sorted(jobs, key=lambda j: j.job)]


@dataclass(frozen=True)
class RuleRate:
    rule: str
    action: str | None
    checked: int
    failed: int

    @property
    def ratio(self) -> float:
        return self.failed / self.checked if self.checked else 0.0


@dataclass(frozen=True)
class QuarantineRates:
    """Failed/checked per rule over the most recent silver batches."""

    rules: tuple[RuleRate, ...] = ()
    batches: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def span_text(self) -> str:
        return f"{format_time(self.first_ms)} to {format_time(self.last_ms)}"


def quarantine_rates(dq: pd.DataFrame, *, batches: int = RECENT_DQ_BATCHES) -> QuarantineRates:
    """Rates per rule over the `batches` most recent batches of silver.dq_metrics (by batch
    time), highest failure ratio first."""
    if dq.empty:
        return QuarantineRates()
    frame = dq.assign(_at=[to_ms(v) or 0 for v in dq["batch_time"]])
    newest = frame.groupby("batch_id")["_at"].max().sort_values(ascending=False).head(batches)
    recent = frame[frame["batch_id"].isin(newest.index)].sort_values("_at")
    rules = []
    for rule, group in recent.groupby("rule", sort=True):
        actions = group["action"].dropna()
        rules.append(
            RuleRate(
                rule=str(rule),
                action=str(actions.iloc[-1]) if len(actions) else None,
                checked=int(group["checked"].fillna(0).sum()),
                failed=int(group["failed"].fillna(0).sum()),
            )
        )
    rules.sort(key=lambda r: (-r.ratio, r.rule))
    return QuarantineRates(tuple(rules), len(newest), int(newest.min()), int(newest.max()))


@dataclass(frozen=True)
class PipelineHealth:
    now_ms: int
    edges: tuple[EdgeRow, ...] = ()
    jobs: tuple[JobRow, ...] = ()
    rates: QuarantineRates = field(default_factory=QuarantineRates)
    twin: TwinOverview | None = None  # None: the twin could not be read
    quarantine_open: int | None = None  # None: silver.quarantine could not be read
    lake_errors: tuple[str, ...] = ()  # tables that could not be read (MinIO down, say)

    @property
    def problems(self) -> int:
        return sum(1 for e in self.edges if e.problem) + sum(1 for j in self.jobs if j.problem)
