"""The workbench's own Delta tables (workbench layer): planners' quarantine decisions
(silver.quarantine_reviews) and work-order feedback (gold.work_order_feedback), written through
delta-rs with conditional commits, idempotent by id. The workbench is their only writer."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import CommitProperties

from plantlake.core.config import Settings
from plantlake.core.contracts import (
    FEEDBACK_VERDICTS,
    GOLD_WORK_ORDER_FEEDBACK,
    NOTE,
    REVIEW_DECISIONS,
    SILVER_QUARANTINE_REVIEWS,
    TableRef,
)
from plantlake.core.errors import PlantlakeError, SinkError, SourceError
from plantlake.lake.arrow_schema import contract_schema
from plantlake.lake.tables import delta_uri
from plantlake.services.minio import delta_rs_options

log = logging.getLogger(__name__)
T = TypeVar("T")

# Attempts of one write before giving up; each lost race means another writer's commit landed,
# so this bounds retries under contention, not progress (some writer always wins a round).
COMMIT_ATTEMPTS = 30
_BACKOFF_S = (0.01, 0.5)  # first and largest pause between attempts, jittered
_READING = ("kafka_topic", "kafka_partition", "kafka_offset")
_MICROSECOND = dt.timedelta(microseconds=1)


class StaleDecision(PlantlakeError):
    """A reading's latest decision is not the one the planner saw: someone decided meanwhile."""

    code = "stale-decision"


class InvalidDecision(PlantlakeError):
    """A decision or feedback that breaks the contract (unknown verdict, no reviewer, ...)."""

    code = "invalid-decision"


@dataclass(frozen=True)
class ReadingKey:
    """A reading in silver.quarantine, by its Kafka coordinates."""

    kafka_topic: str
    kafka_partition: int
    kafka_offset: int


@dataclass(frozen=True)
class Decision:
    """A planner's decision on one quarantined reading. `supersedes` is the reading's latest
    decision id as the planner saw it (None: undecided then)."""

    decision_id: str
    reading: ReadingKey
    asset: str
    sensor: str
    event_time_ms: int
    decision: str
    note: str | None
    reviewer: str
    supersedes: str | None


@dataclass(frozen=True)
class DecideResult:
    inserted: int
    duplicates: int  # decision ids already stored (a double submit), skipped


@dataclass(frozen=True)
class Feedback:
    """A planner's verdict on a work order."""

    feedback_id: str
    work_order_id: str
    asset: str
    failure_mode: str | None
    verdict: str
    note: str | None
    planner: str


def store_options(settings: Settings) -> dict[str, str]:
    """delta-rs storage options for the workbench's tables: each commit a conditional write.

    What deltalake 1.6.6 does on S3 (delta-rs source, crates/aws/src/storage.rs and
    crates/core/src/logstore/default_logstore.rs, since "make putifabsent default for s3",
    Dec 2024): every S3 table gets the DefaultLogStore, which writes `_delta_log/N.json` with
    object_store's PutMode::Create, an S3 PUT with `If-None-Match: *`. MinIO answers 412 when N
    exists, so of two racing writers one gets CommitFailedError; neither overwrites the other.
    object_store 0.13 already defaults S3 conditional put to `etag`; setting it here keeps an
    `AWS_CONDITIONAL_PUT=disabled` in the environment from switching it off (options win), and
    with `disabled` delta-rs refuses to commit at all ("PutMode::Create when conditional put is
    disabled"), which shows commits rely on it. AWS_S3_ALLOW_UNSAFE_RENAME no longer changes how
    1.x commits (the store it selects passes PutMode::Create through), but its promise is "no
    safety", so it is off here, explicitly, which also overrides an environment variable.
    tests/integration/test_review_store.py checks this on the real MinIO (two writer processes,
    none lost; no commit at all with conditional put disabled). A file:// lake (tests) needs no options: local commits are atomic create-if-absent.
    """
    if not settings.lake.root.startswith("s3a://"):
        return {}
    return {
        **delta_rs_options(settings),
        "AWS_S3_ALLOW_UNSAFE_RENAME": "false",
        "AWS_CONDITIONAL_PUT": "etag",
    }


class ReviewStore:
    """Reads and writes silver.quarantine_reviews and gold.work_order_feedback.

    Every write is a MERGE that inserts rows whose id is not stored, committed on the table
    version it read; a concurrent commit makes it fail, and it is redone on the new version.
    """

    def __init__(self, settings: Settings) -> None:
        self._lake = settings.lake
        self._options = store_options(settings)

    # -- decisions ------------------------------------------------------------------------------

    def decide(self, decisions: Sequence[Decision]) -> DecideResult:
        """Store a batch of decisions, all or nothing.

        A decision id already stored is counted as a duplicate and skipped. Raises
        StaleDecision (nothing written) when a new decision's `supersedes` is not its reading's
        latest decision on the version the batch commits on; InvalidDecision for a bad one;
        SinkError when the table cannot be written.
        """
        batch = _unique(decisions)
        if not batch:
            return DecideResult(inserted=0, duplicates=0)

        def attempt(table: DeltaTable) -> DecideResult:
            rows = _stored_for(table, batch)
            known = {row["decision_id"] for row in rows}
            current = _latest_rows(rows)
            new = [d for d in batch if d.decision_id not in known]
            for d in new:
                seen = current.get(d.reading)
                latest_id = None if seen is None else seen["decision_id"]
                if d.supersedes != latest_id:
                    raise StaleDecision(
                        f"The reading {_describe(d.reading)} was decided meanwhile: its latest "
                        f"decision is {latest_id or 'none'}, not {d.supersedes or 'none'}; "
                        f"nothing of this batch of {len(batch)} was stored.",
                        hint="Reload the page and decide again.",
                    )
            if not new:
                return DecideResult(inserted=0, duplicates=len(decisions))
            now = dt.datetime.now(dt.UTC)
            records = [_decision_record(d, now, current.get(d.reading)) for d in new]
            inserted = _insert_new(table, records, SILVER_QUARANTINE_REVIEWS)
            return DecideResult(inserted=inserted, duplicates=len(decisions) - inserted)

        return self._commit(SILVER_QUARANTINE_REVIEWS, attempt)

    def latest(self, readings: Iterable[ReadingKey] | None = None) -> dict[ReadingKey, dict]:
        """The latest decision row of each decided reading (of `readings`, default all), by
        decided_at, ties broken by decision_id. Undecided readings are absent."""
        wanted = None if readings is None else set(readings)
        table = self._open(SILVER_QUARANTINE_REVIEWS)
        if table is None or wanted == set():
            return {}
        where = (
            ""
            if wanted is None
            else f"kafka_offset IN ({_sql_ints(k.kafka_offset for k in wanted)})"
        )
        try:
            latest = _latest_rows(_query(table, "*", where))
        except (OSError, DeltaError) as exc:
            raise self._read_error(SILVER_QUARANTINE_REVIEWS, exc) from exc
        if wanted is None:
            return latest
        return {key: row for key, row in latest.items() if key in wanted}

    # -- work-order feedback --------------------------------------------------------------------

    def record_feedback(self, feedback: Feedback) -> bool:
        """Store a planner's verdict; False when its feedback_id is already stored."""
        _check_feedback(feedback)
        now = dt.datetime.now(dt.UTC)
        record = {
            "feedback_id": feedback.feedback_id,
            "work_order_id": feedback.work_order_id,
            "asset": feedback.asset,
            "failure_mode": feedback.failure_mode,
            "verdict": feedback.verdict,
            "note": feedback.note,
            "planner": feedback.planner,
            "decided_at": now,
            "decided_at_ms": int(now.timestamp() * 1000),
        }
        return self._commit(
            GOLD_WORK_ORDER_FEEDBACK,
            lambda table: _insert_new(table, [record], GOLD_WORK_ORDER_FEEDBACK) > 0,
        )

    def feedback(self) -> pd.DataFrame:
        """Every stored verdict, oldest first (the contract's columns; empty before the first)."""
        table = self._open(GOLD_WORK_ORDER_FEEDBACK)
        schema = contract_schema(GOLD_WORK_ORDER_FEEDBACK)
        try:
            data = schema.empty_table() if table is None else table.to_pyarrow_table()
        except (OSError, DeltaError) as exc:
            raise self._read_error(GOLD_WORK_ORDER_FEEDBACK, exc) from exc
        frame = data.select(schema.names).to_pandas()
        return frame.sort_values(["decided_at", "feedback_id"], ignore_index=True)

    # -- Delta plumbing -------------------------------------------------------------------------

    def _uri(self, ref: TableRef) -> str:
        return delta_uri(ref.path(self._lake))

    def _open(self, ref: TableRef) -> DeltaTable | None:
        try:
            return DeltaTable(self._uri(ref), storage_options=self._options)
        except TableNotFoundError:
            return None
        except (OSError, DeltaError) as exc:
            raise self._read_error(ref, exc) from exc

    def _open_or_create(self, ref: TableRef) -> DeltaTable:
        table = self._open(ref)
        if table is not None:
            return table
        try:
            return DeltaTable.create(
                self._uri(ref),
                schema=contract_schema(ref),
                mode="ignore",
                name=ref.table,
                description=ref.comment,
                storage_options=self._options,
            )
        except (OSError, DeltaError):
            # Another writer created it first (both wrote version 0; one create lost).
            table = self._open(ref)
            if table is None:
                raise
            return table

    def _commit(self, ref: TableRef, attempt: Callable[[DeltaTable], T]) -> T:
        """Run `attempt` on the latest version until its commit lands (or attempts run out)."""
        pause = _BACKOFF_S[0]
        for number in range(1, COMMIT_ATTEMPTS + 1):
            try:
                return attempt(self._open_or_create(ref))
            except CommitFailedError as exc:
                log.debug("%s: commit %d lost a race (%s); retrying", ref.name, number, exc)
            except (OSError, DeltaError) as exc:
                raise SinkError(
                    f"Writing {ref.name} at {self._uri(ref)} failed: {exc}",
                    hint="Check that MinIO is up (`plantlake status`).",
                ) from exc
            time.sleep(random.uniform(0, pause))
            pause = min(pause * 2, _BACKOFF_S[1])
        raise SinkError(
            f"Writing {ref.name} at {self._uri(ref)} lost {COMMIT_ATTEMPTS} commit races in a "
            "row to other writers; nothing was stored.",
            hint="Retry; if it persists, look for a process committing to the table in a loop.",
        )

    def _read_error(self, ref: TableRef, exc: Exception) -> SourceError:
        return SourceError(
            f"Reading {ref.name} at {self._uri(ref)} failed: {exc}",
            hint="Check that MinIO is up (`plantlake status`).",
        )


def _insert_new(table: DeltaTable, records: list[dict[str, Any]], ref: TableRef) -> int:
    """MERGE the records whose key is not in `table`, committed on exactly the version `table`
    holds; the number inserted.

    max_commit_retries=0: delta-rs would otherwise rebase the commit onto a newer version after
    its own conflict check, which knows nothing of the checks made on the version read (the
    reading's latest decision). With none, any concurrent commit raises CommitFailedError and
    the caller redoes everything on the new version.
    """
    (key,) = ref.key
    source = pa.Table.from_pylist(records, schema=contract_schema(ref))
    metrics = (
        table.merge(
            source,
            predicate=f"t.{key} = s.{key}",
            source_alias="s",
            target_alias="t",
            # Prune the target's files by the source's key range instead of scanning them all.
            streamed_exec=False,
            commit_properties=CommitProperties(max_commit_retries=0),
        )
        .when_not_matched_insert_all()
        .execute()
    )
    return int(metrics["num_target_rows_inserted"])


def _stored_for(table: DeltaTable, batch: Sequence[Decision]) -> list[dict[str, Any]]:
    """The rows of `table`'s version that the batch's checks need: those with its decision ids
    or its readings' offsets."""
    ids = ", ".join(_sql_text(d.decision_id) for d in batch)
    offsets = _sql_ints(d.reading.kafka_offset for d in batch)
    columns = f"decision_id, {', '.join(_READING)}, decided_at"
    return _query(table, columns, f"decision_id IN ({ids}) OR kafka_offset IN ({offsets})")


def _query(table: DeltaTable, columns: str, where: str = "") -> list[dict[str, Any]]:
    """Rows of the version `table` holds, through delta-rs's SQL engine: a WHERE lets it skip
    files by their statistics (each commit adds one small file; reading them all made every
    decision cost a scan of the whole table)."""
    sql = f"SELECT {columns} FROM reviews" + (f" WHERE {where}" if where else "")
    return pa.table(QueryBuilder().register("reviews", table).execute(sql)).to_pylist()


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_ints(values: Iterable[int]) -> str:
    return ", ".join(str(int(v)) for v in values)


def _unique(decisions: Sequence[Decision]) -> list[Decision]:
    """The batch, checked, without repeated decision ids (a repeat is a double submit)."""
    batch: dict[str, Decision] = {}
    readings: set[ReadingKey] = set()
    for d in decisions:
        _check_decision(d)
        if d.decision_id in batch:
            continue
        if d.reading in readings:
            raise InvalidDecision(
                f"Two decisions on reading {_describe(d.reading)} in one batch; each reading "
                "takes one decision at a time."
            )
        batch[d.decision_id] = d
        readings.add(d.reading)
    return list(batch.values())


def _check_decision(d: Decision) -> None:
    if not d.decision_id:
        raise InvalidDecision("A decision needs a decision_id.")
    if d.decision not in REVIEW_DECISIONS:
        raise InvalidDecision(
            f"Decision {d.decision!r} on reading {_describe(d.reading)} is not one of "
            f"{', '.join(REVIEW_DECISIONS)}."
        )
    if not d.reviewer.strip():
        raise InvalidDecision(f"Decision {d.decision_id} names no reviewer.")
    if d.decision == NOTE and not (d.note and d.note.strip()):
        raise InvalidDecision(f"Decision {d.decision_id} is a note without text.")


def _check_feedback(f: Feedback) -> None:
    if not f.feedback_id or not f.work_order_id:
        raise InvalidDecision("Feedback needs a feedback_id and a work_order_id.")
    if f.verdict not in FEEDBACK_VERDICTS:
        raise InvalidDecision(
            f"Verdict {f.verdict!r} on work order {f.work_order_id} is not one of "
            f"{', '.join(FEEDBACK_VERDICTS)}."
        )
    if not f.planner.strip():
        raise InvalidDecision(f"Feedback {f.feedback_id} names no planner.")


def _decision_record(
    d: Decision, now: dt.datetime, superseded: Mapping[str, Any] | None
) -> dict[str, Any]:
    # A decision sorts after the one it supersedes even if that one's clock ran ahead (another
    # host, a clock step), so "latest by decided_at" and the supersedes chain always agree.
    decided_at = now if superseded is None else max(now, superseded["decided_at"] + _MICROSECOND)
    return {
        "decision_id": d.decision_id,
        "kafka_topic": d.reading.kafka_topic,
        "kafka_partition": d.reading.kafka_partition,
        "kafka_offset": d.reading.kafka_offset,
        "asset": d.asset,
        "sensor": d.sensor,
        "event_time_ms": d.event_time_ms,
        "decision": d.decision,
        "note": d.note,
        "reviewer": d.reviewer,
        "decided_at": decided_at,
        "supersedes": d.supersedes,
    }


def _latest_rows(rows: Iterable[dict[str, Any]]) -> dict[ReadingKey, dict[str, Any]]:
    latest: dict[ReadingKey, dict[str, Any]] = {}
    for row in rows:
        key = ReadingKey(*(row[c] for c in _READING))
        seen = latest.get(key)
        if seen is None or (row["decided_at"], row["decision_id"]) > (
            seen["decided_at"],
            seen["decision_id"],
        ):
            latest[key] = row
    return latest


def _describe(reading: ReadingKey) -> str:
    return f"{reading.kafka_topic}/{reading.kafka_partition}@{reading.kafka_offset}"
