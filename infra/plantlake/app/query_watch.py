"""Follows running streaming queries: a progress line every few seconds, and each job's progress
file (`$PLANTLAKE_HOME/run/job-<job>.json`) rewritten at every batch (app layer).

`pipeline run` and `pipeline up` start one; the workbench's /live and /metrics read the files.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from plantlake.app.job_progress import JobTally, file_payload, progress_line, summary_line
from plantlake.core.clock import now_ms


def job_progress_file(home: Path, job: str) -> Path:
    """Where a running job writes its progress (the workbench reads it)."""
    return home / "run" / f"job-{job}.json"


def write_atomically(path: Path, payload: dict) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(orjson.dumps(payload))
    tmp.replace(path)


class DeltaVersions:
    """The latest version of a Delta table a stream reads, by the path its progress names,
    looked up through delta-rs at most every `every_s` per table (its log only, no file list)."""

    def __init__(self, storage_options: Mapping[str, str], *, every_s: float = 5.0):
        self.storage_options, self.every_s = dict(storage_options), every_s
        self._tables: dict[str, Any] = {}
        self._seen: dict[str, tuple[float, int | None]] = {}

    def __call__(self, path: str) -> int | None:
        looked, version = self._seen.get(path, (float("-inf"), None))
        if time.monotonic() - looked < self.every_s:
            return version
        try:
            version = self._version(path)
        except Exception:  # noqa: BLE001 - a store hiccup: the backlog is unknown this time
            version = None
        self._seen[path] = (time.monotonic(), version)
        return version

    def _version(self, path: str) -> int:
        from deltalake import DeltaTable

        table = self._tables.get(path)
        if table is None:
            if path.startswith("s3a://"):
                uri, options = "s3://" + path[len("s3a://") :], self.storage_options
            else:  # Spark names a local table file:/path
                uri, options = urlparse(path).path or path, None
            table = self._tables[path] = DeltaTable(uri, storage_options=options,
                                                    without_files=True)  # fmt: skip
        else:
            table.update_incremental()
        return table.version()


class QueryWatch:
    """Tallies the progress of the queries it follows, per job (the query's name).

    `poll` reads each query's latest progress (and its recent ones when batches went by since
    the last poll) and rewrites the job file when there is news; `start` polls every `poll_s`
    from a thread and hands `say` a progress line every `every_s` while batches run (once a
    minute when idle); `close` polls a last time, marks the files stopped and returns each
    job's summary line.
    """

    def __init__(self, home: Path, *, say: Callable[[str], None] | None = None,
                 table_version: Callable[[str], int | None] | None = None,
                 every_s: float = 5.0, poll_s: float = 1.0):  # fmt: skip
        self.home, self.say, self.every_s, self.poll_s = home, say, every_s, poll_s
        self.table_version = table_version
        self.started_ms = now_ms()
        self.tallies: dict[str, JobTally] = {}
        self._queries: list = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._said_ms = self.started_ms
        self._said_batches = 0

    def follow(self, queries: Iterable) -> None:
        """Watch these queries from now on (a restart hands in the new ones)."""
        with self._lock:
            self._queries = [q for q in queries if q is not None]
            for query in self._queries:
                self.tallies.setdefault(query.name, JobTally(query.name, self.started_ms))

    def poll(self, *, catch_up: bool = False) -> None:
        with self._lock:
            queries = list(self._queries)
        for query in queries:
            tally = self.tallies.setdefault(query.name, JobTally(query.name, self.started_ms))
            if self._take(tally, query, catch_up=catch_up):
                self._look_up_versions(tally)
                self._write(tally, running=query.isActive)

    def _look_up_versions(self, tally: JobTally) -> None:
        if self.table_version is None:
            return
        for path in tally.delta_paths():
            version = self.table_version(path)
            if version is None:
                tally.table_versions.pop(path, None)
            else:
                tally.table_versions[path] = version

    def _take(self, tally: JobTally, query, *, catch_up: bool) -> bool:
        last = query.lastProgress
        if last is None:
            return False
        latest = json.loads(last.json)
        counted = tally.counted(str(latest.get("runId")))
        if catch_up or int(latest.get("batchId", -1)) > counted + 1:
            # Batches went by between two polls: count each from the recent ones, in order.
            news = [tally.add(json.loads(p.json)) for p in query.recentProgress]
            return any(news) | tally.add(latest)
        return tally.add(latest)

    def _write(self, tally: JobTally, *, running: bool) -> None:
        payload = file_payload(tally, running=running, now_ms=now_ms())
        # A full disk must not stop the job; the next batch tries again.
        with contextlib.suppress(OSError):
            write_atomically(job_progress_file(self.home, tally.job), payload)

    def report(self) -> None:
        """Hand `say` a line per job if one is due."""
        if self.say is None:
            return
        now = now_ms()
        batches = sum(t.batches for t in self.tallies.values())
        quiet_s = (now - self._said_ms) / 1000
        if quiet_s < self.every_s or (batches == self._said_batches and quiet_s < 60):
            return
        self._said_ms, self._said_batches = now, batches
        for tally in list(self.tallies.values()):
            self._look_up_versions(tally)
            self.say(progress_line(tally, now_ms=now))

    def start(self) -> QueryWatch:
        def loop() -> None:
            while not self._stop.wait(self.poll_s):
                try:
                    self.poll()
                    self.report()
                except Exception:  # noqa: BLE001 - a query stopping under the poll; try again
                    continue

        self._thread = threading.Thread(target=loop, name="query-watch", daemon=True)
        self._thread.start()
        return self

    def settle(self) -> None:
        """Count every batch the followed queries reported, however they stopped."""
        with contextlib.suppress(Exception):  # a stopped Spark session: keep what was tallied
            self.poll(catch_up=True)

    def close(self) -> list[str]:
        """Stop polling, count the last batches, mark every job file stopped; the summaries."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.settle()
        now = now_ms()
        for tally in self.tallies.values():
            self._write(tally, running=False)
        return [summary_line(tally, now_ms=now) for tally in self.tallies.values()]
