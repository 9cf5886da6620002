"""Planners' decisions on quarantined readings as silver applies them: the latest decision per
reading, the review columns of silver.quarantine, and released readings as silver.telemetry rows
(silver layer transforms)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from plantlake.core.contracts import (
    NOTE,
    RELEASE,
    REVIEW_STATUS,
    SILVER_TELEMETRY_COLUMNS,
    TELEMETRY_RECORD,
)
from plantlake.pipelines.transforms.asset_registry import join_registry
from plantlake.pipelines.transforms.unit_conversion import normalize_units

# A quarantined reading's identity: the Kafka record it came from (silver.quarantine's key).
READING: tuple[str, ...] = ("kafka_topic", "kafka_partition", "kafka_offset")
# review_status of a release silver could not carry out: the reading's unit does not convert
# (unit_error), so it has no canonical value to put in silver.telemetry. A later decision (a new
# release once reference.units knows the unit, or a confirmed fault) replaces it.
RELEASE_FAILED = "release_failed"
# The latest decision's columns, as pending_decisions adds them to a quarantined reading.
DECISION_COLUMNS = ("decision_id", "decision", "note", "reviewer", "decided_at")
_DECISION_PREFIX = "d_"


def _newer(time: Column, decision_id: Column, *, than_time: Column, than_id: Column) -> Column:
    """Whether a decision (time, id) comes after another (than_*), or the other is none.

    Decisions are ordered by decided_at, ties by decision_id: the same order on every run.
    """
    return (
        than_id.isNull()
        | (time > than_time)
        | ((time == than_time) & (decision_id > than_id))
        | (time.isNotNull() & than_time.isNull())
    )


def latest_decisions(reviews: DataFrame) -> DataFrame:
    """The latest decision per reading, and the release that stands, if one does.

    Grain in: one silver.quarantine_reviews row (a decision). Grain out: one reading (READING),
    with `event_time_ms` and the DECISION_COLUMNS of its latest decision (by decided_at, ties by
    decision_id), plus `release_id`/`release_decided_at`: its latest release or confirm_fault
    decision when that is a release, else null. A note never changes whether a reading is
    released: "release, then a note" releases it, whether both arrive in one batch or two.
    """
    latest = F.max(F.struct("decided_at", "decision_id", "decision", "note", "reviewer"))
    disposition = F.max(
        F.when(F.col("decision") != NOTE, F.struct("decided_at", "decision_id", "decision"))
    )
    grouped = reviews.groupBy(*READING).agg(
        F.max("event_time_ms").alias("event_time_ms"),
        latest.alias("_latest"),
        disposition.alias("_disposition"),
    )
    releases = F.col("_disposition.decision") == RELEASE
    return grouped.select(
        *READING,
        "event_time_ms",
        *(F.col(f"_latest.{c}").alias(c) for c in DECISION_COLUMNS),
        F.when(releases, F.col("_disposition.decision_id")).alias("release_id"),
        F.when(releases, F.col("_disposition.decided_at")).alias("release_decided_at"),
    )


def pending_decisions(latest: DataFrame, quarantine: DataFrame) -> DataFrame:
    """Quarantined readings whose latest decision is newer than the one silver.quarantine records.

    Grain in: `latest` (latest_decisions, one row per reading) and silver.quarantine rows. Grain
    out: one quarantined reading, all its columns, plus the latest decision as `d_` columns
    (d_decision_id, d_decision, ...) and `release`: whether the reading is to enter
    silver.telemetry now (its standing release, `d_release_id`, is newer than the recorded
    decision; one already applied is never applied again). A decision older than the recorded
    one (applied late) is not pending: only newer decisions win. A decision on a reading that
    is not in `quarantine` is not pending either.
    """
    decisions = latest.select(
        *READING,
        *(F.col(c).alias(_DECISION_PREFIX + c) for c in (*DECISION_COLUMNS, "release_id")),
        F.col("release_decided_at").alias("d_release_decided_at"),
    )
    recorded = {"than_time": F.col("decided_at"), "than_id": F.col("review_decision_id")}
    return (
        quarantine.join(decisions, list(READING), "inner")
        .where(_newer(F.col("d_decided_at"), F.col("d_decision_id"), **recorded))
        .withColumn(
            "release",
            F.col("d_release_id").isNotNull()
            & _newer(F.col("d_release_decided_at"), F.col("d_release_id"), **recorded),
        )
    )


def release_readings(pending: DataFrame, *, registry: DataFrame, units: DataFrame) -> DataFrame:
    """The readings `pending` releases, re-derived as silver derives a reading.

    Grain in: one pending_decisions row; out: one row per row with `release`. The record is taken
    as the device sent it (silver.quarantine keeps `value`/`unit` as sent) and goes through the
    same registry as-of join and unit normalization as silver's own rows, so `value`/`unit` are
    canonical and `source_value`/`source_unit` the device's. Adds `released_by` (the release's
    decision id), `dq_warnings` (every rule it failed, so a reader sees it was overruled),
    `bronze_ingest_time`, and `release_failed`: true when it has no canonical value (a unit
    error, or no quantity), so it must not enter silver.telemetry.
    """
    records = pending.where(F.col("release")).select(
        *(c.name for c in TELEMETRY_RECORD),
        "event_time",
        "receive_time",
        *READING,
        "bronze_ingest_time",
        F.transform("failed_rules", lambda f: f["rule"]).alias("dq_warnings"),
        F.col("d_release_id").alias("released_by"),
    )
    normalized = normalize_units(join_registry(records, registry=registry), units=units)
    return normalized.withColumn(
        "release_failed", F.col("unit_error").isNotNull() | F.col("quantity").isNull()
    )


def released_rows(readings: DataFrame) -> DataFrame:
    """Rows of silver.telemetry (contract order and types) from release_readings rows that did
    not fail, stamped with silver_time now.

    Grain in and out: one released reading.
    """
    stamped = {"silver_time": F.current_timestamp()}
    return readings.where(~F.col("release_failed")).select(
        *(
            stamped.get(c.name, F.col(c.name)).cast(c.type).alias(c.name)
            for c in SILVER_TELEMETRY_COLUMNS
        )
    )


def review_columns(pending: DataFrame, *, failed: DataFrame) -> DataFrame:
    """What silver.quarantine's review columns become: the latest decision of each reading.

    Grain in: one pending_decisions row, and `failed` (READING of the release_readings rows that
    failed). Grain out: one reading: READING, event_time_ms, review_status (REVIEW_STATUS of the
    decision, or RELEASE_FAILED), reviewer, decided_at, review_note, review_decision_id.
    """
    statuses = F.create_map(*(F.lit(v) for pair in REVIEW_STATUS.items() for v in pair))
    flagged = failed.select(*READING).distinct().withColumn("_failed", F.lit(True))
    return pending.join(flagged, list(READING), "left").select(
        *READING,
        "event_time_ms",
        F.when(F.col("_failed"), F.lit(RELEASE_FAILED))
        .otherwise(statuses[F.col("d_decision")])
        .alias("review_status"),
        F.col("d_reviewer").alias("reviewer"),
        F.col("d_decided_at").alias("decided_at"),
        F.col("d_note").alias("review_note"),
        F.col("d_decision_id").alias("review_decision_id"),
    )
