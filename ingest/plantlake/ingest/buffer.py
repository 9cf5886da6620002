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

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plantlake.core.clock import now_ms
from plantlake.core.errors import SinkError
from plantlake.ingest.buffer_codec import decode_batch, encode_batch

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
            # The forwarder may run in a process of its own: a writer waits for the other's
            # transaction (all write transactions start IMMEDIATE, so none fails on a stale read).
            self._db.execute("PRAGMA busy_timeout=10000")
            # Set before the first table exists (a no-op on older files): deleted pages can be
            # handed back to the file system once the buffer has drained.
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            # WAL with synchronous=NORMAL: a committed append survives a crash of this process
            # (not necessarily a power cut), at a fraction of the cost of a full fsync per batch.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # One row per append (see buffer_codec): records first_seq .. first_seq + count - 1.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS batch (first_seq INTEGER PRIMARY KEY,"
                " count INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
                " sheddable INTEGER NOT NULL, topics TEXT NOT NULL, body BLOB NOT NULL)"
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
            self._migrate_record_rows()
        except sqlite3.Error as exc:
            raise SinkError(f"Edge buffer {path} cannot be opened: {exc}.",
                            hint="Check the disk and the permissions of the buffer folder.") from exc  # fmt: skip

    @contextlib.contextmanager
    def _write(self, what: str):
        """One write transaction (IMMEDIATE: it takes the write lock before it reads, so it
        never fails on a stale read), rolled back on an SQLite error, reported as SinkError."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise SinkError(f"Edge buffer {self.path}: {what} failed: {exc}.") from exc

    def _meta_int(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, name: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, str(value)))

    def _insert(self, rows: Sequence[tuple[str, bytes, bytes]], now: int) -> None:
        """Inside a transaction: store rows as the next batch, numbering its records on."""
        first = max(self._meta_int("next_seq"), 1)
        topics, body = encode_batch(rows)
        sheddable = all(t in self._sheddable for t, _, _ in rows) if self._sheddable else False
        self._db.execute("INSERT INTO batch VALUES (?, ?, ?, ?, ?, ?)",
                         (first, len(rows), now, sheddable, topics, body))  # fmt: skip
        self._set_meta("next_seq", first + len(rows))

    def _migrate_record_rows(self) -> None:
        """Files of the one-row-per-record layout: their waiting records become one batch with
        the same sequence numbers (the dedup identity downstream), and the old table goes."""
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='outbox'"
        ).fetchone()  # fmt: skip
        if not exists:
            return
        with self._write("migrating the buffer to one row per batch"):
            rows = self._db.execute(
                "SELECT seq, topic, key, value, created_ms FROM outbox ORDER BY seq"
            ).fetchall()  # fmt: skip
            last = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name='outbox'"
            ).fetchone()
            self._set_meta(
                "next_seq", max(self._meta_int("next_seq"), (last[0] if last else 0) + 1)
            )
            start = 0
            while start < len(rows):  # contiguous runs keep their numbers
                end = start + 1
                while end < len(rows) and rows[end][0] == rows[end - 1][0] + 1:
                    end += 1
                run = rows[start:end]
                topics, body = encode_batch([(t, k, v) for _, t, k, v, _ in run])
                self._db.execute("INSERT INTO batch VALUES (?, ?, ?, ?, ?, ?)",
                                 (run[0][0], len(run), run[0][4], False, topics, body))  # fmt: skip
                start = end
            self._db.execute("DROP TABLE outbox")

    def append(self, rows: Sequence[tuple[str, bytes, bytes]]) -> Shed | None:
        """Store (topic, key, value) rows durably, in order. Returns what was shed to make room,
        if the buffer had reached its cap."""
        if not rows:
            return None
        now = now_ms()
        with self._lock, self._write("append"):
            self._insert(rows, now)
            shed = self._shed(self.max_bytes) if self.max_bytes is not None else None
        return shed

    def _used_bytes(self) -> int:
        pages, free = (self._db.execute(f"PRAGMA {p}").fetchone()[0]
                       for p in ("page_count", "freelist_count"))  # fmt: skip
        return (pages - free) * self._page_size

    def _shed(self, max_bytes: int) -> Shed | None:
        """Inside append's transaction: drop the oldest batches of sheddable records, none of
        them partly sent, until the buffer is a tenth under its cap `max_bytes` (so shedding
        happens in steps, not on every append)."""
        if self._used_bytes() <= max_bytes:
            return None
        acked = self._meta_int("acked")
        total = 0
        first: int | None = None
        last: int | None = None
        while self._used_bytes() > max_bytes * 0.9:
            oldest = self._db.execute(
                "SELECT first_seq, count, created_ms FROM batch WHERE sheddable AND first_seq > ?"
                " ORDER BY first_seq LIMIT 1", (acked,),
            ).fetchone()  # fmt: skip
            if oldest is None:
                break
            seq, count, created = oldest
            self._db.execute("DELETE FROM batch WHERE first_seq = ?", (seq,))
            total += count
            first = created if first is None else first
            last = created
        if not total or first is None or last is None:  # total > 0: both were set
            return None
        return Shed(total, first, last)

    def peek(self, limit: int) -> list[Entry]:
        """The oldest `limit` entries not yet acknowledged, in the order they were appended."""
        with self._lock:
            acked = self._meta_int("acked")
            cursor = self._db.execute(
                "SELECT first_seq, count, created_ms, topics, body FROM batch"
                " WHERE first_seq + count > ? ORDER BY first_seq", (acked + 1,),
            )  # fmt: skip
            out: list[Entry] = []
            for first, count, created, topics, body in cursor:
                records = decode_batch(topics, body, count)
                skip = max(0, acked + 1 - first)
                for i in range(skip, count):
                    topic, key, value = records[i]
                    out.append(Entry(first + i, topic, key, value, created))
                    if len(out) == limit:
                        cursor.close()
                        return out
        return out

    def ack(self, upto_seq: int, *, replace: Sequence[tuple[str, bytes, bytes]] = ()) -> None:
        """Forget every entry up to and including `upto_seq` (Kafka has them), and in the same
        transaction append `replace` (e.g. dead letters for entries Kafka refused for good)."""
        now = now_ms()
        with self._lock:
            with self._write("ack"):
                acked = max(self._meta_int("acked"), upto_seq)
                self._set_meta("acked", acked)
                self._db.execute("DELETE FROM batch WHERE first_seq + count - 1 <= ?", (acked,))
                if replace:
                    self._insert(replace, now)
            # A drained buffer gives its space back, at most every few seconds: shrinking
            # syncs the file, and a forwarder that keeps up drains the buffer on every batch.
            if time.monotonic() - self._shrunk > SHRINK_EVERY_S and self._drained():
                self._shrink()

    def _drained(self) -> bool:
        return self._db.execute("SELECT 1 FROM batch LIMIT 1").fetchone() is None

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
        with self._lock, self._write("saving watermarks"):
            self._db.executemany(
                "INSERT INTO watermark VALUES (?, ?, ?) ON CONFLICT (asset, sensor) DO UPDATE"
                " SET event_time_ms = excluded.event_time_ms"
                " WHERE excluded.event_time_ms > watermark.event_time_ms",
                [(asset, sensor, ms) for (asset, sensor), ms in marks.items()],
            )

    def pending(self) -> tuple[int, int | None]:
        """How many entries wait, and the creation time of the oldest."""
        with self._lock:
            return _pending(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _pending(db: sqlite3.Connection) -> tuple[int, int | None]:
    """(entries waiting, creation ms of the oldest) in a buffer database."""
    total, oldest, first = db.execute(
        "SELECT SUM(count), MIN(created_ms), MIN(first_seq) FROM batch"
    ).fetchone()
    if not total:
        return 0, None
    row = db.execute("SELECT value FROM meta WHERE name = 'acked'").fetchone()
    acked_in_first = max(0, (int(row[0]) if row else 0) + 1 - first)
    return total - acked_in_first, oldest


def read_pending(path: Path) -> tuple[int, int | None]:
    """`Outbox.pending` of the buffer at `path`, opened read-only: a monitor never takes the edge
    process's write lock, and never creates or migrates the database as opening an Outbox does.
    Raises sqlite3.Error when the file is not a readable buffer."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=2.0)) as db:
        return _pending(db)
