"""Planners' decisions from silver.quarantine_reviews applied by the silver job (and the cold
path): silver.quarantine's review columns set, released readings appended to silver.telemetry
(pipelines layer; the step each micro-batch and each job start runs).

The rules:
- Which decision counts: per reading (its Kafka key), the latest by decided_at, ties by
  decision_id. It is applied when it is newer than the decision silver.quarantine records
  (review_decision_id); an older decision that reaches the lake late changes nothing.
- silver.quarantine: review_status (released, confirmed_fault, noted, or release_failed),
  reviewer, decided_at, review_note and review_decision_id follow the latest decision (a MERGE
  that only moves forward). A confirmed fault stays out of silver.telemetry and counts against
  its sensor in silver.quarantine.
- silver.telemetry: a reading whose standing decision is a release (a note after it does not
  undo it) is appended once, re-derived from the record as the device sent it with silver's own
  registry join and unit normalization, with its Kafka lineage, `released_by` = the release's
  decision id, `dq_warnings` = every rule it failed (so a reader sees it was overruled) and
  silver_time now. Once: the rows are anti-joined on silver.telemetry's key (asset, sensor,
  event_time_ms, sequence; null-safe), so a rerun, a retried batch or a second release adds
  nothing; silver.telemetry has one writer, this job, so the anti-join is enough.
- A release whose unit does not convert (a unit_error, or no quantity) is not appended: its
  review_status becomes `release_failed` and the job logs a warning with the reason. A later
  decision replaces it (release again once reference.units knows the unit, or confirm a fault).
- Released, then confirmed as a fault (or noted): the reading stays in silver.telemetry (silver
  appends, it never deletes); the review columns show the latest decision.
- Gold: a released reading is new input to gold. If its sensor's watermark has not closed its
  window, the window's aggregates include it; if it has, the reading lands in gold.late_data
  (gold's rule for every late reading) and the closed window is not reopened. The gold job
  reads it from its silver.telemetry stream; the cold path hands it to gold (`on_released`).

Exactly once across failures: silver.quarantine is merged last, so decisions stay pending until
their releases are in silver.telemetry (and, in the cold path, in gold). The append needs no
Delta transaction version: the anti-join on the key is its proof. Gold's windows have no such
key, so the cold path's gold writes carry Delta's (txnAppId, txnVersion) = (writer and reviews
table, reviews version), and each application reads silver.quarantine_reviews at one Delta
version, noted beside the query's checkpoint ("open" before it writes, "done" after). An
application that stopped half-way is finished at its noted version first: it hands gold the
same rows under the same version, which Delta skips where they were written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from plantlake.adapters.checkpoints import checkpoint_lock
from plantlake.adapters.delta import (
    append_rows,
    delta_table_id,
    delta_version,
    read_checkpoint_note,
    read_delta,
    table_exists,
    update_matched,
    write_checkpoint_note,
)
from plantlake.adapters.spark import first_row
from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import (
    SILVER_QUARANTINE,
    SILVER_QUARANTINE_REVIEWS,
    SILVER_TELEMETRY,
)
from plantlake.pipelines.transforms.dedup import dedup_batch, drop_seen
from plantlake.pipelines.transforms.reviews import (
    latest_decisions,
    pending_decisions,
    release_readings,
    released_rows,
    review_columns,
)

log = logging.getLogger(__name__)

REVIEW_COLUMNS = ("review_status", "reviewer", "decided_at", "review_note", "review_decision_id")
# The MERGE moves a reading's review forward only (see reviews.pending_decisions).
_NEWER = (
    "t.review_decision_id IS NULL OR s.decided_at > t.decided_at OR "
    "(s.decided_at = t.decided_at AND s.review_decision_id > t.review_decision_id)"
)
# The note beside a checkpoint: "<reviews table id> <reviews version> open|done".
_NOTE = "plantlake_reviews"


@dataclass(frozen=True)
class Applied:
    """What one application did: decisions applied, readings released, releases that failed."""

    decisions: int = 0
    released: int = 0
    failed: int = 0

    def __add__(self, other: Applied) -> Applied:
        return Applied(
            self.decisions + other.decisions,
            self.released + other.released,
            self.failed + other.failed,
        )


@dataclass(frozen=True)
class Released:
    """The silver.telemetry rows one application released (read back from the table, so a
    retried application hands over the same rows), and the Delta transaction identity a job
    that passes them on writes them with: `txn_app` appended to its own writer id (it names the
    reviews table), `txn_version` the reviews version."""

    rows: DataFrame
    txn_app: str
    txn_version: int


@dataclass(frozen=True)
class _Note:
    table_id: str
    version: int
    done: bool

    @classmethod
    def parse(cls, text: str | None) -> _Note | None:
        parts = (text or "").split()
        if len(parts) != 3 or not parts[1].isdigit():
            return None  # none yet, or a write cut short: nothing to finish
        return cls(parts[0], int(parts[1]), parts[2] == "done")

    def text(self) -> str:
        return f"{self.table_id} {self.version} {'done' if self.done else 'open'}"


class ReviewApplier:
    """Applies new decisions of silver.quarantine_reviews for the query that owns `checkpoint`.

    `registry` and `units` are the reference tables silver normalizes with.
    """

    def __init__(
        self,
        spark: SparkSession,
        lake: LakeSettings,
        *,
        checkpoint: str,
        registry: DataFrame,
        units: DataFrame,
    ) -> None:
        self.spark = spark
        self.registry, self.units = registry, units
        self.reviews_path = SILVER_QUARANTINE_REVIEWS.path(lake)
        self.quarantine_path = SILVER_QUARANTINE.path(lake)
        self.telemetry_path = SILVER_TELEMETRY.path(lake)
        self.note_path = f"{checkpoint.rstrip('/')}/{_NOTE}"
        # The reviews version this process applied last: a batch finding it unchanged is done.
        self._applied: tuple[str, int] | None = None

    def apply(
        self, *, label: str, on_released: Callable[[Released], None] | None = None
    ) -> Applied:
        """Apply the decisions added since the last application (nothing when the table is
        missing or unchanged); `label` names the batch in the log line."""
        if not table_exists(self.spark, self.reviews_path):
            return Applied()
        version = delta_version(self.spark, self.reviews_path)
        if self._applied is not None and self._applied[1] == version:
            return Applied()
        table_id = delta_table_id(self.spark, self.reviews_path)
        note = _Note.parse(read_checkpoint_note(self.spark, self.note_path))
        if note == _Note(table_id, version, True):  # applied before this process started
            self._applied = (table_id, version)
            return Applied()
        done = Applied()
        if note and note.table_id == table_id and not note.done and note.version < version:
            done += self._apply_at(table_id, note.version, on_released)  # finish it first
        write_checkpoint_note(self.spark, self.note_path, _Note(table_id, version, False).text())
        done += self._apply_at(table_id, version, on_released)
        write_checkpoint_note(self.spark, self.note_path, _Note(table_id, version, True).text())
        self._applied = (table_id, version)
        if done.decisions:
            log.info(
                "%s: applied %d quarantine decisions (silver.quarantine_reviews version %d): "
                "%d readings released into silver.telemetry, %d releases failed",
                label, done.decisions, version, done.released, done.failed,
            )  # fmt: skip
        else:
            log.debug("%s: no new quarantine decisions to apply", label)
        return done

    def _apply_at(
        self, table_id: str, version: int, on_released: Callable[[Released], None] | None
    ) -> Applied:
        decisions = latest_decisions(read_delta(self.spark, self.reviews_path, version=version))
        stats = first_row(
            decisions.agg(
                F.count(F.lit(1)).alias("n"),
                F.count("event_time_ms").alias("timed"),
                F.min("event_time_ms").alias("lo"),
                F.max("event_time_ms").alias("hi"),
            )
        )
        if stats["n"] == 0 or not table_exists(self.spark, self.quarantine_path):
            return Applied()
        # The decisions' event times bound the quarantine files to read (Delta skips the rest
        # by their min/max), unless one lacks its time.
        bounded = (
            f"t.event_time_ms BETWEEN {int(stats['lo'])} AND {int(stats['hi'])} AND "
            if stats["timed"] == stats["n"]
            else ""
        )
        quarantine = read_delta(self.spark, self.quarantine_path)
        if bounded:
            quarantine = quarantine.where(F.col("event_time_ms").between(stats["lo"], stats["hi"]))
        # Materialized with their lineage cut: silver.quarantine is merged and silver.telemetry
        # appended below, and a plan reading them again would see the rows written.
        pending = pending_decisions(decisions, quarantine).localCheckpoint()
        count = pending.count()
        if count == 0:
            return Applied()
        readings = release_readings(pending, registry=self.registry, units=self.units)
        readings = readings.localCheckpoint()
        failed = readings.where(F.col("release_failed"))
        failures = failed.count()
        if failures:
            shown = failed.select("asset", "sensor", "unit_error").limit(5).collect()
            log.warning(
                "%d released readings have no canonical value and stay out of silver.telemetry "
                "(review_status %r), e.g. %s",
                failures, "release_failed",
                "; ".join(f"{r.asset} {r.sensor}: {r.unit_error or 'no quantity'}" for r in shown),
            )  # fmt: skip
        released = 0
        times = first_row(readings.agg(F.min("event_time_ms"), F.max("event_time_ms")))
        if times[0] is not None:
            released = self._append(released_rows(readings), times)
            if on_released is not None:
                rows = self._released_by(pending, times)
                on_released(Released(rows, f"reviews:{table_id}", version))
        update_matched(
            review_columns(pending, failed=failed),
            self.quarantine_path,
            on=bounded + SILVER_QUARANTINE.merge_on(),
            update={c: f"s.{c}" for c in REVIEW_COLUMNS},
            when_matched=_NEWER,
        )
        return Applied(decisions=count, released=released, failed=failures)

    def _in_span(self, span: Row) -> DataFrame:
        """silver.telemetry's rows with event_time_ms in the span (Delta skips other files)."""
        return read_delta(self.spark, self.telemetry_path).where(
            F.col("event_time_ms").between(int(span[0]), int(span[1]))
        )

    def _append(self, rows: DataFrame, span: Row) -> int:
        """Append the released rows silver.telemetry does not hold yet; returns how many."""
        fresh = drop_seen(dedup_batch(rows), seen=self._in_span(span)).localCheckpoint()
        appended = fresh.count()
        if appended:
            append_rows(fresh, self.telemetry_path)
        return appended

    def _released_by(self, pending: DataFrame, span: Row) -> DataFrame:
        """The silver.telemetry rows the pending releases put there (in this application or
        in an earlier attempt of it)."""
        ids = pending.where(F.col("release")).select(F.col("d_release_id").alias("released_by"))
        return self._in_span(span).join(ids, "released_by", "left_semi")


def apply_at_start(
    applier: ReviewApplier,
    settings: Settings,
    checkpoint: str,
    *,
    job: str,
    on_released: Callable[[Released], None] | None = None,
) -> Applied:
    """Apply new decisions before the query starts, holding the checkpoint's lock (so two jobs
    on one checkpoint never both write): a `--once` run with no new bronze rows runs no batch,
    yet applies them. Raises CheckpointBusy when another job holds the lock."""
    lock = checkpoint_lock(settings, checkpoint, job).acquire()
    try:
        return applier.apply(label=f"{job} start", on_released=on_released)
    finally:
        lock.release()
