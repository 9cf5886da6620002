"""The edge's store-and-forward buffer: a durable on-disk outbox in SQLite (ingest layer).

Everything an edge process emits is appended here first, in one transaction per batch; once
`append` returns, the records survive a crash of the process. The forwarder reads them in
order, produces them to Kafka, and deletes them only after Kafka acknowledged them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plantlake.errors import SinkError


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int  # position in this buffer: with `instance`, the record's dedup key downstream
    topic: str
    key: bytes
    value: bytes
    created_ms: int


class Outbox:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            # WAL with synchronous=NORMAL: a committed append survives a crash of this process
            # (not necessarily a power cut), at a fraction of the cost of a full fsync per batch.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " topic TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, created_ms INTEGER NOT NULL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (str(uuid.uuid4()),)
            )
            self.instance = self._db.execute(
                "SELECT value FROM meta WHERE name='instance'"
            ).fetchone()[0]
        except sqlite3.Error as exc:
            raise SinkError(f"Edge buffer {path} cannot be opened: {exc}.",
                            hint="Check the disk and the permissions of the buffer folder.") from exc  # fmt: skip

    def append(self, rows: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Store (topic, key, value) rows durably, in order."""
        if not rows:
            return
        now = int(time.time() * 1000)
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO outbox (topic, key, value, created_ms) VALUES (?, ?, ?, ?)",
                    [(t, k, v, now) for t, k, v in rows],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise SinkError(f"Edge buffer {self.path}: append failed: {exc}.") from exc

    def peek(self, limit: int) -> list[Entry]:
        """The oldest `limit` entries, in the order they were appended."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, key, value, created_ms FROM outbox ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def ack(self, upto_seq: int) -> None:
        """Forget every entry up to and including `upto_seq` (Kafka has them)."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq <= ?", (upto_seq,))

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
