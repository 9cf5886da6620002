"""Silver layer: bronze telemetry deduplicated, registry-joined, in canonical units, checked by the
data-quality rules, and routed to silver.telemetry, silver.quarantine and silver.dq_metrics.

Each micro-batch, and once when the job starts, it then applies planners' new decisions from
silver.quarantine_reviews (`review_apply`): review columns of silver.quarantine, and released
readings appended once to silver.telemetry with `released_by` set. The gold job reads a released
reading like any other: aggregated while its window is open, in gold.late_data once closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructField, StructType, _parse_datatype_string

from plantlake.adapters.checkpoint_sources import add_sources
from plantlake.adapters.checkpoints import start_exclusive
from plantlake.adapters.delta import (
    add_missing_columns,
    append_unless_empty,
    read_delta,
    require_table,
    table_exists,
    upsert,
    writer_id,
)
from plantlake.adapters.spark import first_row, scheduler_pool
from plantlake.core.clock import now_ms
from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import (
    BRONZE_EDGE_FEATURES,
    BRONZE_TELEMETRY,
    REFERENCE_ASSET_REGISTRY,
    REFERENCE_UNITS,
    SILVER_DQ_METRICS,
    SILVER_QUARANTINE,
    SILVER_RULE_STATE,
    SILVER_TELEMETRY,
    SILVER_TELEMETRY_COLUMNS,
    TELEMETRY_RECORD,
    TableRef,
)
from plantlake.pipelines.jobs.fail_rules import raise_on_fail_rules
from plantlake.pipelines.jobs.review_apply import ReviewApplier, apply_at_start
from plantlake.pipelines.transforms.asset_registry import join_registry
from plantlake.pipelines.transforms.dedup import KEY, dedup_batch, drop_seen
from plantlake.pipelines.transforms.expectations import UNIT_RULE, Rule, load_rules
from plantlake.pipelines.transforms.rule_evaluation import (
    DQ_FAILURES_TYPE,
    apply_rules,
    carried_state,
    rule_metrics,
    split_by_action,
)
from plantlake.pipelines.transforms.unit_conversion import normalize_units

# silver.dq_metrics without batch_time, which the job stamps when it writes the rows.
DQ_METRICS_SCHEMA = ", ".join(c for c in SILVER_DQ_METRICS.columns if c != "batch_time timestamp")
# Lineage and review columns of silver.quarantine, after the bronze record and its event times.
QUARANTINE_LINEAGE = (
    "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "edge_instance", "edge_seq"
)  # fmt: skip
DUPLICATES_RULE = "duplicates"


def silver_schema() -> StructType:
    """silver.telemetry as a Spark schema, nullability included (SILVER_TELEMETRY_COLUMNS)."""
    return StructType(
        [
            StructField(c.name, _parse_datatype_string(c.type), c.nullable)
            for c in SILVER_TELEMETRY_COLUMNS
        ]
    )


def silver_rows(kept: DataFrame) -> DataFrame:
    """Rows of silver.telemetry, columns in contract order and types, from kept checked rows
    (`released_by` null: they passed the rules)."""
    source = {
        "bronze_ingest_time": F.col("ingest_time"),
        "silver_time": F.current_timestamp(),
        "released_by": F.lit(None),
    }
    return kept.select(
        *(
            source.get(c.name, F.col(c.name)).cast(c.type).alias(c.name)
            for c in SILVER_TELEMETRY_COLUMNS
        )
    )


def quarantine_rows(held: DataFrame) -> DataFrame:
    """Rows of silver.quarantine from held rows carrying `dq_failures`.

    Grain: one reading. The record is kept as the device sent it (`value`/`unit` are the
    source's), with every failed rule, the Kafka and edge lineage, and open review columns.
    """
    original = {"value": F.col("source_value"), "unit": F.col("source_unit")}
    return held.select(
        *(original.get(c.name, F.col(c.name)).alias(c.name) for c in TELEMETRY_RECORD),
        "event_time", "receive_time", "asset_class",
        F.col("dq_failures").cast(DQ_FAILURES_TYPE).alias("failed_rules"),
        *QUARANTINE_LINEAGE,
        F.col("ingest_time").alias("bronze_ingest_time"),
        F.current_timestamp().alias("quarantined_at"),
        F.lit("open").alias("review_status"),
        F.lit(None).cast("string").alias("reviewer"),
        F.lit(None).cast("timestamp").alias("decided_at"),
        F.lit(None).cast("string").alias("review_note"),
        F.lit(None).cast("string").alias("review_decision_id"),
    )  # fmt: skip


def with_unit_failure(rows: DataFrame) -> DataFrame:
    """Rows with a `unit_error` as held rows: `dq_failures` holds it as the rule "unit"."""
    failure = F.struct(
        F.lit(UNIT_RULE).alias("rule"),
        F.lit("quarantine").alias("action"),
        F.col("unit_error").alias("reason"),
    )
    return rows.withColumn("dq_failures", F.array(failure).cast(DQ_FAILURES_TYPE))


def job_metric_rows(
    *, batch_id: int, received: int, unique: int, unit_errors: int
) -> list[tuple[int, str, str, int, int, int]]:
    """dq_metrics rows of the job's own checks (batch_id, rule, action, checked, passed, failed):
    duplicates dropped before the rules, and readings quarantined for their unit."""
    return [
        (batch_id, DUPLICATES_RULE, "drop", received, unique, received - unique),
        (batch_id, UNIT_RULE, "quarantine", unique, unique - unit_errors, unit_errors),
    ]


def merge_rule_state(state: DataFrame, path: str, *, app_id: str, batch_id: int) -> None:
    """Move silver.rule_state forward to `state` (CARRIED_SCHEMA), per sensor, exactly once."""
    upsert(state, path, on=SILVER_RULE_STATE.merge_on(), app_id=app_id, batch_id=batch_id,
           when_matched="s.last_time > t.last_time")  # fmt: skip


@dataclass(frozen=True)
class _BatchWriter:
    """What one micro-batch needs: the lake, the rules, the reference tables (read at start),
    and what applies planners' decisions."""

    spark: SparkSession
    lake: LakeSettings
    app_id: str
    rules: tuple[Rule, ...]
    registry: DataFrame
    units: DataFrame
    reviews: ReviewApplier

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        # Read the micro-batch from Delta once: its stats, dedup and the rule checks reuse it.
        batch = batch.persist()
        try:
            self.write(batch, batch_id)
        finally:
            batch.unpersist()

    def write(self, batch: DataFrame, batch_id: int) -> None:
        """Route one micro-batch of bronze rows (persisted by the caller) to the silver tables,
        then apply new quarantine decisions (each step is exactly once on its own)."""
        self.route(batch, batch_id)
        self.reviews.apply(label=f"silver batch {batch_id}")

    def route(self, batch: DataFrame, batch_id: int) -> None:
        """Route one micro-batch of bronze rows (persisted by the caller) to the silver tables."""
        stats = first_row(
            batch.agg(
                F.count(F.lit(1)).alias("n"),
                F.min("event_time_ms").alias("lo"),
                F.max("event_time_ms").alias("hi"),
            )
        )
        if stats["n"] == 0:
            return
        unique = dedup_batch(batch)
        # Keys an earlier batch already routed (also after a checkpoint reset or a replay).
        for ref in (SILVER_TELEMETRY, SILVER_QUARANTINE):
            seen = self._rows_in_range(ref, stats["lo"], stats["hi"])
            if seen is not None:
                unique = drop_seen(unique, seen=seen.select(*KEY))
        # Materialized with their lineage cut, not persisted: a cached plan that reads
        # silver.telemetry or silver.quarantine (drop_seen) is recomputed by Spark as soon as
        # this batch appends to them, and would then drop the rows it just wrote.
        prepared = normalize_units(
            join_registry(unique, registry=self.registry), units=self.units
        ).localCheckpoint()
        counts = first_row(
            prepared.agg(
                F.count(F.lit(1)).alias("unique"), F.count("unit_error").alias("unit_errors")
            )
        )
        state_path = SILVER_RULE_STATE.path(self.lake)
        carried = (
            read_delta(self.spark, state_path) if table_exists(self.spark, state_path) else None
        )
        checked = apply_rules(
            prepared.where(F.col("unit_error").isNull()),
            self.rules,
            carried=carried,
            now_ms=now_ms(),
        ).localCheckpoint()
        metrics: list[Row] = rule_metrics(checked, self.rules, batch_id=batch_id).collect()
        # Before any write: a failed `fail` rule leaves this batch unwritten everywhere.
        raise_on_fail_rules(checked, self.rules, metrics=metrics, batch_id=batch_id)
        kept, quarantined, _dropped = split_by_action(checked)
        unit_failures = with_unit_failure(prepared.where(F.col("unit_error").isNotNull()))
        held = quarantine_rows(quarantined).unionByName(quarantine_rows(unit_failures))
        metric_rows = [
            (m["batch_id"], m["rule"], m["action"], m["checked"], m["passed"], m["failed"])
            for m in metrics
        ] + job_metric_rows(
            batch_id=batch_id,
            received=stats["n"],
            unique=counts["unique"],
            unit_errors=counts["unit_errors"],
        )
        measured = self.spark.createDataFrame(metric_rows, DQ_METRICS_SCHEMA).withColumn(
            "batch_time", F.current_timestamp()
        )
        held_back = counts["unit_errors"] + sum(
            m["failed"] for m in metrics if m["action"] in ("quarantine", "fail")
        )  # an upper bound (a row may fail several rules): 0 means none is held
        for ref, rows, empty in (
            (SILVER_TELEMETRY, silver_rows(kept), False),
            (SILVER_QUARANTINE, held, held_back == 0),
            (SILVER_DQ_METRICS, measured, False),
        ):
            append_unless_empty(rows, ref.path(self.lake), empty=empty,
                                app_id=self.app_id, batch_id=batch_id)  # fmt: skip
        # Last: a batch retried after this commit finds its rows written and its keys seen.
        merge_rule_state(carried_state(checked), state_path, app_id=self.app_id, batch_id=batch_id)

    def _rows_in_range(self, ref: TableRef, lo_ms: int, hi_ms: int) -> DataFrame | None:
        """A table's rows with event_time_ms in [lo_ms, hi_ms] (Delta skips files by min/max),
        or None when the table does not exist yet."""
        path = ref.path(self.lake)
        if not table_exists(self.spark, path):
            return None
        return read_delta(self.spark, path).where(F.col("event_time_ms").between(lo_ms, hi_ms))


def _create_silver_table(spark: SparkSession, path: str) -> None:
    """Create silver.telemetry with the contract's columns and NOT NULLs, if it does not exist.

    SQL, because a DataFrame write makes every column nullable, and DeltaTable's builder with a
    location refuses file:/// paths as "two different locations".
    """
    columns = ", ".join(
        f"`{c.name}` {c.type}{'' if c.nullable else ' NOT NULL'}" for c in SILVER_TELEMETRY_COLUMNS
    )
    comment = SILVER_TELEMETRY.comment.replace("'", "\\'")
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS delta.`{path}` ({columns}) USING delta COMMENT '{comment}'"
    )


def add_new_columns(spark: SparkSession, lake: LakeSettings) -> None:
    """Give silver.telemetry and silver.quarantine of an older lake the nullable columns the
    contract has gained since (released_by, review_decision_id), before anything writes them."""
    for ref in (SILVER_TELEMETRY, SILVER_QUARANTINE):
        path = ref.path(lake)
        if table_exists(spark, path):
            add_missing_columns(spark, path, ref.columns)


def batch_writer(
    spark: SparkSession, lake: LakeSettings, *, checkpoint: str, rules: Sequence[Rule] | None
) -> _BatchWriter:
    """The per-micro-batch writer of silver, for the query that owns `checkpoint`.

    Raises SourceError when bronze or the reference tables are missing, and ExpectationConfigError
    on bad rule files.
    """
    for ref in (BRONZE_TELEMETRY, REFERENCE_UNITS, REFERENCE_ASSET_REGISTRY):
        require_table(spark, ref, lake, hint="Run `plantlake reference load` (reference "
                      "tables) or the bronze job first: the silver job reads it.")  # fmt: skip
    rules = load_rules() if rules is None else tuple(rules)
    add_new_columns(spark, lake)
    _create_silver_table(spark, SILVER_TELEMETRY.path(lake))
    # Reference tables are small and change rarely: read once, so a batch reads no extra
    # snapshots; `plantlake reference load` takes effect when the job restarts.
    registry = read_delta(spark, REFERENCE_ASSET_REGISTRY.path(lake)).cache()
    units = read_delta(spark, REFERENCE_UNITS.path(lake)).cache()
    return _BatchWriter(
        spark=spark,
        lake=lake,
        app_id=f"silver:{writer_id(spark, checkpoint)}",
        rules=rules,
        registry=registry,
        units=units,
        reviews=ReviewApplier(spark, lake, checkpoint=checkpoint, registry=registry, units=units),
    )


# What silver refines, in this order: a checkpoint made before edge features reached the lake
# names only the first, and `add_sources` lets it resume there (see checkpoint_sources).
BRONZE_READINGS: tuple[TableRef, ...] = (BRONZE_TELEMETRY, BRONZE_EDGE_FEATURES)


def bronze_readings(spark: SparkSession, lake: LakeSettings, *, checkpoint: str) -> DataFrame:
    """One stream of every bronze reading: telemetry and the edge's window features (same
    columns), so both go through one registry join, unit normalization and rule set.

    Creates bronze.edge_features empty when bronze has not yet (a lake from before it), and
    grows an older checkpoint by the new source."""
    features = BRONZE_EDGE_FEATURES.path(lake)
    if not table_exists(spark, features):
        spark.createDataFrame([], BRONZE_EDGE_FEATURES.ddl()).write.format("delta").options(
            **BRONZE_EDGE_FEATURES.properties()
        ).mode("append").save(features)
    add_sources(spark, checkpoint, len(BRONZE_READINGS))
    streams = [spark.readStream.format("delta").load(ref.path(lake)) for ref in BRONZE_READINGS]
    return reduce(DataFrame.unionByName, streams)


def run(
    spark: SparkSession, settings: Settings, *, once: bool, rules: Sequence[Rule] | None = None
) -> StreamingQuery:
    """Start the silver query over bronze.telemetry and bronze.edge_features; `once` processes what is available and stops.

    `rules` defaults to the rule files in expectations/ (`load_rules()`). New quarantine
    decisions are applied before the query starts, then with every micro-batch.

    Raises SourceError when bronze or the reference tables are missing, ExpectationConfigError
    on bad rule files, and CheckpointBusy when another silver job holds the checkpoint; a failing
    `fail` rule stops the query with ExpectationFailed's message.
    """
    lake = settings.lake
    checkpoint = lake.checkpoint_path("silver")
    write_batch = batch_writer(spark, lake, checkpoint=checkpoint, rules=rules)
    # Decisions wait for no bronze row: availableNow with nothing new runs no batch.
    apply_at_start(write_batch.reviews, settings, checkpoint, job="silver")
    source = bronze_readings(spark, lake, checkpoint=checkpoint)
    every = None if once else settings.pipeline.silver_trigger
    with scheduler_pool(spark, "silver"):
        return start_exclusive(source, write_batch, settings, checkpoint, job="silver",
                               every=every)  # fmt: skip
