"""Streaming checkpoints: one writer per checkpoint, enforced, and the move to per-lake folders
(pipelines layer).

Two queries on one checkpoint can plan different offset ranges for the same batch id; Delta then
skips the second as "already written" and its records are lost without a word. So a job takes
an exclusive lock on its checkpoint before it starts and holds it until its query ends, and a
second job on the same checkpoint is refused with the pid of the first.

The lock is a local file under $PLANTLAKE_HOME/locks named after the checkpoint URI, held with
flock(2): the kernel drops it when the holder exits, however it exits (kill -9 included), so a
crashed job never leaves a stale lock. It guards the jobs of one machine; jobs of two machines
on one s3a:// checkpoint must be kept apart by their scheduler.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from plantlake.adapters.batch_errors import keep_errors
from plantlake.core.config import Settings, local_checkpoint_root
from plantlake.core.errors import PlantlakeError

log = logging.getLogger(__name__)
# A log entry being written: Spark writes `offsets/.N.<uuid>.tmp` (and Hadoop's local file system
# its `..N.<uuid>.tmp.crc`), then renames it to `offsets/N`.
_UNFINISHED_ENTRY = re.compile(r"\.\.?\d+\.[0-9a-fA-F-]+\.tmp(\.crc)?")


class CheckpointBusy(PlantlakeError):
    code = "checkpoint-busy"


class CheckpointLock:
    def __init__(self, lock_file: Path, checkpoint: str, job: str):
        self.lock_file, self.checkpoint, self.job = lock_file, checkpoint, job
        self._fd: int | None = None

    def acquire(self, *, wait_own_s: float = 10.0) -> CheckpointLock:
        """Take the lock or raise CheckpointBusy. A lock this process holds (a query of ours
        still winding down) is waited for, up to `wait_own_s`."""
        self.lock_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_own_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                if f"pid {os.getpid()} " in holder and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                os.close(fd)
                raise CheckpointBusy(
                    f"Another {self.job} job is writing with checkpoint {self.checkpoint}: "
                    f"{holder or 'a process that has not said which'}.",
                    hint="Two writers on one checkpoint lose data. Stop that one first, or give "
                    "this one its own lake (lake.root).",
                ) from None
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        note = f"pid {os.getpid()} ({' '.join(sys.argv[:4])}) since {started}\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, note.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def checkpoint_lock(settings: Settings, checkpoint: str, job: str) -> CheckpointLock:
    name = hashlib.sha256(checkpoint.encode()).hexdigest()[:20]
    return CheckpointLock(settings.home / "locks" / f"checkpoint-{name}.lock", checkpoint, job)


def refuse_if_busy(settings: Settings, job: str) -> None:
    """Raise CheckpointBusy if another process writes with `job`'s checkpoint, before the caller
    starts a Spark session (20 s and more on a busy machine) only to be refused. The query takes
    the lock for good when it starts (start_exclusive), which also settles a race with a job
    started in between."""
    checkpoint_lock(settings, settings.lake.checkpoint_path(job), job).acquire().release()


def start_exclusive(
    source: DataFrame,
    write_batch: Callable,
    settings: Settings,
    checkpoint: str,
    *,
    job: str,
    every: str | None,
) -> StreamingQuery:
    """Start a query named `job` over the streaming `source` that hands each micro-batch to
    `write_batch`, holding the checkpoint's lock until the query ends (or fails).

    `every` is the processing-time trigger ("10 seconds"); None processes what is available
    and stops. A PlantlakeError a batch raises is kept for `await_query`
    (plantlake.adapters.batch_errors).
    """
    writer = source.writeStream.queryName(job).option("checkpointLocation", checkpoint)
    writer = writer.trigger(availableNow=True) if every is None else writer.trigger(
        processingTime=every)  # fmt: skip
    lock = checkpoint_lock(settings, checkpoint, job).acquire()
    try:
        drop_unfinished_entries(source.sparkSession, checkpoint)
        query = writer.foreachBatch(keep_errors(job, write_batch)).start()
    except BaseException:
        lock.release()
        raise
    threading.Thread(target=_release_when_done, args=(query, lock), name=f"{job}-lock",
                     daemon=True).start()  # fmt: skip
    return query


def drop_unfinished_entries(spark: SparkSession, checkpoint: str) -> list[str]:
    """Delete the log entries a killed writer left half-written in `checkpoint`; returns them.

    A writer killed between writing an entry and renaming it leaves the temporary file, which
    Spark never read. A query with no batch yet refuses a checkpoint whose offsets or commits
    folder holds any file at all (STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY), so a job killed
    in its first seconds could never start again. Call it holding the checkpoint's lock: no
    writer of ours is mid-entry then. Works on any Hadoop file system (file://, s3a://)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    dropped = []
    for folder_name in ("offsets", "commits"):
        folder = jvm.org.apache.hadoop.fs.Path(f"{checkpoint}/{folder_name}")
        fs = folder.getFileSystem(conf)
        if not fs.exists(folder):
            continue
        for status in fs.listStatus(folder):
            if _UNFINISHED_ENTRY.fullmatch(status.getPath().getName()):
                fs.delete(status.getPath(), False)
                dropped.append(f"{folder_name}/{status.getPath().getName()}")
    if dropped:
        log.warning("%s: removed %d half-written log entries a killed run left: %s",
                    checkpoint, len(dropped), ", ".join(dropped))  # fmt: skip
    return dropped


def _release_when_done(query: StreamingQuery, lock: CheckpointLock) -> None:
    try:
        query.awaitTermination()
    except Exception:  # the query failed; whoever awaits it reports why
        pass
    finally:
        lock.release()


# The jobs whose checkpoints lived straight under $PLANTLAKE_HOME/checkpoints before each lake
# had a folder of its own.
_LEGACY_JOBS = ("bronze", "silver", "gold", "cold", "features")


def adopt_legacy_checkpoints(settings: Settings, say=print) -> list[str]:
    """Move checkpoints of the old shared layout ($PLANTLAKE_HOME/checkpoints/<job>) into the
    configured lake's folder, so an upgraded install resumes where it stopped instead of reading
    Kafka again from the start. Only with the default checkpoint_root, and never over a
    checkpoint the lake already has. Returns the jobs moved."""
    if settings.lake.checkpoint_root != local_checkpoint_root(settings.home, settings.lake.root):
        return []
    legacy_root = settings.home / "checkpoints"
    moved = []
    for job in _LEGACY_JOBS:
        legacy = legacy_root / job
        target = Path(urlparse(settings.lake.checkpoint_path(job)).path)
        if (legacy / "plantlake_writer_id").exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            legacy.rename(target)
            moved.append(job)
    if moved:
        say(f"checkpoints of {', '.join(moved)} moved from {legacy_root} into this lake's own "
            f"folder {settings.lake.checkpoint_root}")  # fmt: skip
    return moved
