"""The edge's store-and-forward buffer: a durable on-disk outbox in SQLite (ingest layer).

Everything an edge process emits is appended here first, in one transaction per batch; once
`append` returns, the records survive a crash of the process. The forwarder reads them in
order, produces them to Kafka, and deletes them only after Kafka acknowledged them.

The buffer is capped (`max_bytes`). Past the cap it sheds the oldest *sheddable* records
(telemetry and edge features: a live twin needs the newest readings most, and an OPC-UA
historian can backfill old ones) and never lifecycle events or dead letters; `append` returns
what it shed so the caller can say so downstream. Once drained, the file gives its space back.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plantlake.errors import SinkError

SHRINK_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Shed:
    """Records the buffer dropped to stay under its cap: how many, and their creation times."""

    count: int
    first_created_ms: int
    last_created_ms: int


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int  # position in this buffer: with `instance`, the record's dedup key downstream
    topic: str
    key: bytes
    value: bytes
    created_ms: int


class Outbox:
    def __init__(self, path: Path, *, max_bytes: int | None = None,
                 sheddable: Collection[str] = ()):  # fmt: skip
        """`max_bytes`: the cap on the stored records (None: none); `sheddable`: the topics
        whose oldest records go first when the cap is reached (no others ever do)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.max_bytes = max_bytes
        self._sheddable = tuple(sheddable)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            path.chmod(0o600)  # buffered readings are plant data; SQLite's side files follow
            # Set before the first table exists (a no-op on older files): deleted pages can be
            # handed back to the file system once the buffer has drained.
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            # WAL with synchronous=NORMAL: a committed append survives a crash of this process
            # (not necessarily a power cut), at a fraction of the cost of a full fsync per batch.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " topic TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, created_ms INTEGER NOT NULL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            # Per sensor, the newest source time the edge process handled (OPC-UA backfills a
            # restart's gap from it). Kept with the buffer: both describe what this edge has.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS watermark (asset TEXT NOT NULL, sensor TEXT NOT NULL,"
                " event_time_ms INTEGER NOT NULL, PRIMARY KEY (asset, sensor))"
            )
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (str(uuid.uuid4()),)
            )
            self.instance = self._db.execute(
                "SELECT value FROM meta WHERE name='instance'"
            ).fetchone()[0]
            self._page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._shrunk = 0.0
        except sqlite3.Error as exc:
            raise SinkError(f"Edge buffer {path} cannot be opened: {exc}.",
                            hint="Check the disk and the permissions of the buffer folder.") from exc  # fmt: skip

    def append(self, rows: Sequence[tuple[str, bytes, bytes]]) -> Shed | None:
        """Store (topic, key, value) rows durably, in order. Returns what was shed to make room,
        if the buffer had reached its cap."""
        if not rows:
            return None
        now = int(time.time() * 1000)
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO outbox (topic, key, value, created_ms) VALUES (?, ?, ?, ?)",
                    [(t, k, v, now) for t, k, v in rows],
                )
                shed = self._shed() if self.max_bytes is not None else None
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise SinkError(f"Edge buffer {self.path}: append failed: {exc}.") from exc
        return shed

    def _used_bytes(self) -> int:
        pages, free = (self._db.execute(f"PRAGMA {p}").fetchone()[0]
                       for p in ("page_count", "freelist_count"))  # fmt: skip
        return (pages - free) * self._page_size

    def _shed(self) -> Shed | None:
        """Inside append's transaction: drop the oldest sheddable records until the buffer is
        a tenth under its cap (so shedding happens in steps, not on every append)."""
        if self._used_bytes() <= self.max_bytes or not self._sheddable:
            return None
        marks = ",".join("?" * len(self._sheddable))
        total, first, last = 0, None, None
        while self._used_bytes() > self.max_bytes * 0.9:
            # Record sizes vary; drop by the average until under the mark.
            count, size = self._db.execute(
                f"SELECT COUNT(*), SUM(length(key) + length(value) + 40) FROM outbox"
                f" WHERE topic IN ({marks})", self._sheddable,
            ).fetchone()  # fmt: skip
            if not count:
                break
            excess = self._used_bytes() - self.max_bytes * 0.9
            n = max(1, min(count, int(excess / (size / count)) + 1))
            a, b, dropped = self._db.execute(
                f"SELECT MIN(created_ms), MAX(created_ms), COUNT(*) FROM (SELECT created_ms FROM"
                f" outbox WHERE topic IN ({marks}) ORDER BY seq LIMIT ?)", (*self._sheddable, n),
            ).fetchone()  # fmt: skip
            self._db.execute(
                f"DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE topic IN ({marks})"
                f" ORDER BY seq LIMIT ?)", (*self._sheddable, n),
            )  # fmt: skip
            total += dropped
            first = a if first is None else first
            last = b
        return Shed(total, first, last) if total else None

    def peek(self, limit: int) -> list[Entry]:
        """The oldest `limit` entries, in the order they were appended."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, key, value, created_ms FROM outbox ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def ack(self, upto_seq: int, *, replace: Sequence[tuple[str, bytes, bytes]] = ()) -> None:
        """Forget every entry up to and including `upto_seq` (Kafka has them), and in the same
        transaction append `replace` (e.g. dead letters for entries Kafka refused for good)."""
        now = int(time.time() * 1000)
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.execute("DELETE FROM outbox WHERE seq <= ?", (upto_seq,))
                self._db.executemany(
                    "INSERT INTO outbox (topic, key, value, created_ms) VALUES (?, ?, ?, ?)",
                    [(t, k, v, now) for t, k, v in replace],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise SinkError(f"Edge buffer {self.path}: ack failed: {exc}.") from exc
            # A drained buffer gives its space back, at most every few seconds: shrinking
            # syncs the file, and a forwarder that keeps up drains the buffer on every batch.
            if time.monotonic() - self._shrunk > SHRINK_EVERY_S and self._drained():
                self._shrink()

    def _drained(self) -> bool:
        return self._db.execute("SELECT 1 FROM outbox LIMIT 1").fetchone() is None

    def _shrink(self) -> None:
        """Free pages back to the file system, the write-ahead log truncated."""
        # executescript steps the pragma to the end; execute() would free a single page.
        self._db.executescript("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")
        self._shrunk = time.monotonic()

    def size_bytes(self) -> int:
        """The buffer's files on disk (database and write-ahead log)."""
        wal = self.path.with_name(self.path.name + "-wal")
        return sum(p.stat().st_size for p in (self.path, wal) if p.exists())

    def load_watermarks(self) -> dict[tuple[str, str], int]:
        """The newest source time handled per (asset, sensor), as saved."""
        with self._lock:
            rows = self._db.execute("SELECT asset, sensor, event_time_ms FROM watermark").fetchall()
        return {(asset, sensor): ms for asset, sensor, ms in rows}

    def save_watermarks(self, marks: Mapping[tuple[str, str], int]) -> None:
        """Move watermarks forward (never back), in one transaction."""
        if not marks:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO watermark VALUES (?, ?, ?) ON CONFLICT (asset, sensor) DO UPDATE"
                    " SET event_time_ms = excluded.event_time_ms"
                    " WHERE excluded.event_time_ms > watermark.event_time_ms",
                    [(asset, sensor, ms) for (asset, sensor), ms in marks.items()],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise SinkError(
                    f"Edge buffer {self.path}: saving watermarks failed: {exc}."
                ) from exc

    def pending(self) -> tuple[int, int | None]:
        """How many entries wait, and the creation time of the oldest."""
        with self._lock:
            count, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(created_ms) FROM outbox"
            ).fetchone()
        return count, oldest

    def close(self) -> None:
        with self._lock:
            self._db.close()
