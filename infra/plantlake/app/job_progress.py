"""Streaming jobs' progress as people and the workbench read it: Spark's progress events summed
per job into batches, rows and backlog, a line for the terminal, and the job progress file's
payload (app layer; pure: plain progress dicts in, text and dicts out, no Spark, no I/O).

A progress event is Spark's `StreamingQueryProgress` as JSON (`json.loads(progress.json)`). The
backlog is what is left to read: for Kafka, the latest minus the end offset, summed over
partitions (Spark reports both); for Delta, whose progress reports neither a latest offset nor
metrics (Delta 4.4), the table versions from the batch's end offset to the table's latest
version, which the caller looks up. What nothing says stays unknown, never a guess.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# DeltaSourceOffset.END_INDEX (Long.MaxValue - 100): the offset is past every file of its version.
DELTA_END_INDEX = 2**63 - 1 - 100
UNIT_WORDS = {"offsets": "Kafka offset", "versions": "Delta version", "files": "Delta file"}


@dataclass(frozen=True)
class Backlog:
    """What the sources of one query have left to read, by unit, and how many did not say."""

    parts: Mapping[str, int] = field(default_factory=dict)
    unknown: int = 0

    @property
    def amount(self) -> int | None:
        """The total when every source said, in one unit; None otherwise."""
        if self.unknown or len(self.parts) != 1:
            return None
        return next(iter(self.parts.values()))

    @property
    def unit(self) -> str | None:
        return next(iter(self.parts)) if len(self.parts) == 1 else None

    def describe(self) -> str:
        if not self.parts:
            return "unknown"
        said = " + ".join(
            f"{n:,} {UNIT_WORDS.get(u, u)}{'' if n == 1 else 's'}" for u, n in self.parts.items()
        )
        if self.unknown:
            return f"{said} ({self.unknown} source{'s' if self.unknown > 1 else ''} unknown)"
        return said


def _offset(value: Any) -> Any:
    """An offset as Spark's JSON holds it: a dict, or a JSON string of one (PySpark's objects)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def delta_source_path(source: Mapping[str, Any]) -> str | None:
    """The table a Delta source reads, from its description (`DeltaSource[s3a://b/t]`)."""
    description = str(source.get("description", ""))
    if description.startswith("DeltaSource[") and description.endswith("]"):
        return description[len("DeltaSource[") : -1]
    return None


def source_backlog(
    source: Mapping[str, Any], table_version: int | None = None
) -> tuple[str, int] | None:
    """(unit, amount) one source of a progress event has left to read; None if nothing says.

    `table_version` is the latest version of a Delta source's table, which Delta's progress
    leaves out (its latestOffset is null and it reports no metrics).
    """
    end, latest = _offset(source.get("endOffset")), _offset(source.get("latestOffset"))
    metrics = source.get("metrics") or {}
    if isinstance(end, dict) and "reservoirVersion" in end:  # a Delta table
        read_to = int(end["reservoirVersion"])
        if isinstance(latest, dict) and "reservoirVersion" in latest:
            return "versions", max(0, int(latest["reservoirVersion"]) - read_to)
        if table_version is not None:
            # The end offset (v, index) has read nothing of version v at index -1 and part of
            # it at a file index; only Delta's end marker (near 2**63) means v is all read.
            done = int(end.get("index", -1)) >= DELTA_END_INDEX
            return "versions", max(0, table_version - read_to + (0 if done else 1))
        if "numFilesOutstanding" in metrics:
            return "files", int(float(metrics["numFilesOutstanding"]))
        return None
    if str(source.get("description", "")).startswith("Kafka") and isinstance(end, dict):
        if isinstance(latest, dict):
            behind = 0
            for topic, partitions in end.items():
                for partition, offset in partitions.items():
                    newest = latest.get(topic, {}).get(partition)
                    if newest is not None:
                        behind += max(0, int(newest) - int(offset))
            return "offsets", behind
        if "avgOffsetsBehindLatest" in metrics:  # the mean over the partitions read
            partitions = sum(len(p) for p in end.values())
            return "offsets", round(float(metrics["avgOffsetsBehindLatest"]) * partitions)
    return None


def query_backlog(
    progress: Mapping[str, Any], table_versions: Mapping[str, int] | None = None
) -> Backlog:
    """The backlog of every source of a progress event; `table_versions` maps a Delta source's
    path (`delta_source_path`) to its table's latest version."""
    parts: dict[str, int] = {}
    unknown = 0
    versions = table_versions or {}
    for source in progress.get("sources") or ():
        said = source_backlog(source, versions.get(delta_source_path(source) or ""))
        if said is None:
            unknown += 1
        else:
            parts[said[0]] = parts.get(said[0], 0) + said[1]
    return Backlog(parts, unknown)


def executed(progress: Mapping[str, Any]) -> bool:
    """Whether the event is a batch that ran, not an idle trigger's report (which has no
    addBatch time and reads no rows)."""
    return "addBatch" in (progress.get("durationMs") or {}) or bool(progress.get("numInputRows"))


def event_ms(progress: Mapping[str, Any]) -> int | None:
    """When Spark made the event (its `timestamp`, ISO 8601 UTC), in epoch ms."""
    try:
        return int(datetime.fromisoformat(progress["timestamp"]).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return None


def _number(value: Any) -> float:
    """Spark leaves a rate out of its JSON when it is not finite (a batch of no time)."""
    number = float(value) if isinstance(value, int | float) else 0.0
    return number if math.isfinite(number) else 0.0


@dataclass
class JobTally:
    """One job's batches and rows in this run, from its queries' progress events (a restarted
    query keeps the tally: its batch ids go on from the checkpoint)."""

    job: str
    started_ms: int
    batches: int = 0
    rows: int = 0
    query_id: str | None = None
    last_batch: Mapping[str, Any] | None = None  # the latest batch that ran
    latest: Mapping[str, Any] | None = None  # the latest event, an idle one included
    # Latest version of each Delta table the job reads, as last looked up (by source path).
    table_versions: dict[str, int] = field(default_factory=dict)
    _counted: dict[str, int] = field(default_factory=dict)  # runId -> last batchId counted

    def add(self, progress: Mapping[str, Any]) -> bool:
        """Count `progress` if it is a batch not counted yet; True when it is newer than the
        latest event seen (so the job file is worth rewriting)."""
        run, batch = str(progress.get("runId")), int(progress.get("batchId", -1))
        if executed(progress) and batch > self._counted.get(run, -1):
            self._counted[run] = batch
            self.batches += 1
            self.rows += int(progress.get("numInputRows") or 0)
            self.last_batch = progress
        newer = self.latest is None or (event_ms(progress) or 0) > (event_ms(self.latest) or 0)
        if newer:
            self.latest = progress
            self.query_id = str(progress.get("id", self.query_id))
        return newer

    def backlog(self) -> Backlog:
        """What the latest event says is left to read."""
        if self.latest is None:
            return Backlog()
        return query_backlog(self.latest, self.table_versions)

    def delta_paths(self) -> list[str]:
        """The Delta tables the latest event read from."""
        sources = (self.latest or {}).get("sources") or ()
        return [path for path in map(delta_source_path, sources) if path is not None]

    def counted(self, run_id: str) -> int:
        """The last batch id counted of query run `run_id` (-1: none yet)."""
        return self._counted.get(run_id, -1)

    def rate(self, now_ms: int) -> float:
        seconds = (now_ms - self.started_ms) / 1000
        return self.rows / seconds if seconds > 0 else 0.0


def progress_line(tally: JobTally, *, now_ms: int) -> str:
    """`silver: 12 batches, 1,234,567 rows in 63 s (19,596 rows/s); last batch 41: 50,000 rows
    in 2.4 s; backlog 120,000 Kafka offsets`."""
    seconds = (now_ms - tally.started_ms) / 1000
    if tally.batches == 0:
        text = f"{tally.job}: no batch finished yet ({seconds:.0f} s)"
    else:
        text = (f"{tally.job}: {tally.batches:,} batches, {tally.rows:,} rows in {seconds:.0f} s "
                f"({tally.rate(now_ms):,.0f} rows/s)")  # fmt: skip
    last = tally.last_batch
    if last is not None:
        took = (last.get("durationMs") or {}).get("triggerExecution")
        took_text = f" in {took / 1000:.1f} s" if took is not None else ""
        text += f"; last batch {last.get('batchId')}: {int(last.get('numInputRows') or 0):,} rows{took_text}"
    return f"{text}; backlog {tally.backlog().describe()}"


def summary_line(tally: JobTally, *, now_ms: int) -> str:
    """`silver: done in 63.2 s: 12 batches, 1,234,567 rows, 19,535 rows/s`."""
    seconds = (now_ms - tally.started_ms) / 1000
    return (f"{tally.job}: done in {seconds:.1f} s: {tally.batches:,} batches, {tally.rows:,} rows, "
            f"{tally.rate(now_ms):,.0f} rows/s")  # fmt: skip


def file_payload(tally: JobTally, *, running: bool, now_ms: int) -> dict[str, Any]:
    """The job progress file (`$PLANTLAKE_HOME/run/job-<job>.json`) the workbench's /live and
    /metrics read. `updated_at_ms` is Spark's time of the latest event, idle ones included, so
    its age says whether the query still reports at all."""
    last = tally.last_batch or {}
    latest = tally.latest or {}
    backlog = tally.backlog()
    return {
        "job": tally.job,
        "query_id": tally.query_id or "",
        "batch_id": int(last.get("batchId", latest.get("batchId", -1))),
        "batches": tally.batches,
        "rows": tally.rows,
        "num_input_rows": int(last.get("numInputRows") or 0),
        "rows_per_second": _number(last.get("processedRowsPerSecond")),
        "batch_duration_ms": int((last.get("durationMs") or {}).get("triggerExecution") or 0),
        "backlog": backlog.amount,
        "backlog_unit": backlog.unit,
        "backlog_text": backlog.describe(),
        "started_at_ms": tally.started_ms,
        "updated_at_ms": event_ms(latest) or now_ms,
        "running": running,
    }
