"""The lake contract: table names and locations, and the canonical record every source emits."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from plantlake.core.config import LakeSettings

RECORD_SCHEMA_VERSION = 1
QUALITIES = ("Good", "Uncertain", "Bad")
# What an epoch-millisecond time of a record may be: 1970-01-01 up to 2100-01-01 (UTC), which
# keeps microsecond and nanosecond stamps out (both read as years far past 2100). Whether a
# time in range is plausible (a clock days ahead, a stale backfill) is silver's to judge.
EPOCH_MS_MIN = 0
EPOCH_MS_END = 4_102_444_800_000
EPOCH_MS_FIELDS = ("event_time_ms", "receive_time_ms")
NOT_EPOCH_MS = "is not an epoch-millisecond time (1970 to 2100)"


def is_epoch_ms(value: int) -> bool:
    return EPOCH_MS_MIN <= value < EPOCH_MS_END


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Spark SQL type name
    nullable: bool
    doc: str


# The canonical telemetry record (schema version 1), as JSON on the telemetry topic.
TELEMETRY_RECORD: tuple[Column, ...] = (
    Column("schema_version", "int", False, "Version of this record layout."),
    Column("asset", "string", False, "Asset path site/line/asset; also the Kafka key."),
    Column("sensor", "string", False, "Sensor name within the asset."),
    Column("value", "double", True, "Reading as sent; null or NaN when the source had none."),
    Column("unit", "string", True, "Unit declared by the source (e.g. degF, bar)."),
    Column("quality", "string", False, "Good, Uncertain or Bad, from the protocol."),
    Column("event_time_ms", "long", False, "Source timestamp, epoch milliseconds UTC."),
    Column("receive_time_ms", "long", False, "When the edge process received it, epoch ms UTC."),
    Column("source_protocol", "string", False, "opcua, modbus, sparkplug or demo."),
    Column("source_node", "string", False, "Edge node or endpoint that produced it."),
    Column("sequence", "long", True, "Source sequence number, where the protocol has one."),
    Column("filter_version", "string", True, "Edge filter configuration that let it through."),
)


# A lifecycle event on the lifecycle topic (ingest.records.LifecycleEvent.to_record()).
LIFECYCLE_RECORD: tuple[Column, ...] = (
    Column(
        "kind",
        "string",
        False,
        "birth, death, stale, rebirth_requested, reconnected, data_shed (an edge buffer dropped "
        "its oldest readings at its cap; detail says how many and from when) or data_gap (a span "
        "of source time the edge could not backfill; detail names it and why).",
    ),
    Column("source_protocol", "string", False, "opcua, modbus or sparkplug."),
    Column("source_node", "string", False, "Edge node or endpoint."),
    Column(
        "event_time_ms", "long", False, "When it happened (the host's receipt time for deaths)."
    ),
    Column("receive_time_ms", "long", False, "When the edge process learned of it."),
    Column("device", "string", True, "Device within the node, when the event is a device's."),
    Column("asset", "string", True, "Asset path, when known; null for a node-level event."),
    Column("bd_seq", "long", True, "Sparkplug birth/death sequence of the session."),
    Column("detail", "string", True, "Free text for people."),
)
LIFECYCLE_KINDS = (
    "birth", "death", "stale", "rebirth_requested", "reconnected", "data_shed", "data_gap",
)  # fmt: skip

# A dead letter from an edge process on the dead_letter topic (ingest.records.DeadLetter).
EDGE_DEAD_LETTER_RECORD: tuple[Column, ...] = (
    Column("source_protocol", "string", False, "Protocol of the input that failed."),
    Column("source_node", "string", False, "Edge node or endpoint it came from."),
    Column("reason", "string", False, "Why it could not become a reading."),
    Column("raw", "string", False, "The raw input, base64."),
    Column("receive_time_ms", "long", False, "When the edge received it."),
    Column("origin", "string", True, "MQTT topic, register address, ..."),
)


_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int, "long": int, "double": (int, float), "string": str,
}  # fmt: skip
# Looked up for every record the hot path reads: built once.
_TELEMETRY_NAMES = frozenset(c.name for c in TELEMETRY_RECORD)
_TELEMETRY_TYPES = tuple(
    (c.name, c.type, _PYTHON_TYPES[c.type], c.nullable) for c in TELEMETRY_RECORD
)


def record_errors(record: Mapping) -> list[str]:
    """Why a decoded JSON record is not a valid canonical record (empty when it is)."""
    errors: list[str] = []
    if not record.keys() <= _TELEMETRY_NAMES:
        errors.extend(
            f"unknown field {extra!r}" for extra in sorted(record.keys() - _TELEMETRY_NAMES)
        )
    for name, kind, types, nullable in _TELEMETRY_TYPES:
        value = record.get(name)
        if value is None:
            if not nullable:
                errors.append(f"{name} is missing")
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            errors.append(f"{name} should be {kind}, got {type(value).__name__}")
    if record.get("quality") is not None and record.get("quality") not in QUALITIES:
        errors.append(f"quality {record['quality']!r} is not one of {QUALITIES}")
    if record.get("schema_version") not in (None, RECORD_SCHEMA_VERSION):
        errors.append(f"schema_version {record['schema_version']} is not {RECORD_SCHEMA_VERSION}")
    for name in EPOCH_MS_FIELDS:
        stamp = record.get(name)
        if type(stamp) is int and not is_epoch_ms(stamp):
            errors.append(f"{name} {stamp} {NOT_EPOCH_MS}")
    value = record.get("value")
    if isinstance(value, float) and math.isinf(value):
        errors.append("value is infinite")
    return errors


# Columns of silver.telemetry, the contract between silver (writer) and gold and features
# (readers). `value`/`unit` are canonical; the device's own are kept as `source_value`/`source_unit`.
SILVER_TELEMETRY_COLUMNS: tuple[Column, ...] = (
    Column("asset", "string", False, "Asset path site/line/asset."),
    Column("sensor", "string", False, "Sensor name within the asset."),
    Column(
        "asset_class",
        "string",
        True,
        "From the registry row valid at event time (pump, motor, press).",
    ),
    Column(
        "quantity",
        "string",
        False,
        "temperature, pressure, flow, current, speed, vibration, state.",
    ),
    Column("value", "double", True, "In the canonical unit of the quantity."),
    Column("unit", "string", True, "Canonical unit (degC, bar, A, rpm, m3/h, mm/s)."),
    Column("source_value", "double", True, "As the device sent it."),
    Column("source_unit", "string", True, "As the device declared it."),
    Column("quality", "string", False, "Good, Uncertain or Bad."),
    Column("event_time", "timestamp", False, "Source timestamp."),
    Column("event_time_ms", "long", False, "Source timestamp, epoch ms (part of the key)."),
    Column("receive_time", "timestamp", False, "When the edge received it."),
    Column("source_protocol", "string", False, "opcua, modbus, sparkplug, daq."),
    Column("source_node", "string", False, "Edge node or endpoint."),
    Column("sequence", "long", True, "Source sequence number (part of the key; null-safe)."),
    Column("filter_version", "string", True, "Edge filter configuration version."),
    Column("dq_warnings", "array<string>", True, "Rules with action warn that this row failed."),
    Column("kafka_topic", "string", False, "Lineage back to Kafka."),
    Column("kafka_partition", "int", False, "Lineage back to Kafka."),
    Column("kafka_offset", "long", False, "Lineage back to Kafka."),
    Column("bronze_ingest_time", "timestamp", False, "When bronze landed it."),
    Column("silver_time", "timestamp", False, "When silver wrote it."),
    Column(
        "released_by",
        "string",
        True,
        "The silver.quarantine_reviews decision that released this reading from quarantine; "
        "null for a reading that passed the rules.",
    ),
)

# Columns of gold.twin_state, written by the hot path through delta-rs (pipelines/plantlake/pipelines/jobs/twin_store.py).
TWIN_STATE_COLUMNS: tuple[Column, ...] = (
    Column("asset", "string", False, "Asset path site/line/asset."),
    Column("sensor", "string", False, "Sensor name within the asset."),
    Column("asset_class", "string", True, "From the registry row valid at event time."),
    Column("quantity", "string", True, "The physical quantity (registry)."),
    Column("value", "double", False, "The latest Good value, in the canonical unit."),
    Column("unit", "string", True, "Canonical unit; null for unitless window features."),
    Column("quality", "string", False, "Always Good: only Good readings move the twin."),
    Column("event_time", "timestamp", False, "Source timestamp of the value."),
    Column("event_time_ms", "long", False, "Source timestamp, epoch ms."),
    Column("receive_time", "timestamp", False, "When the edge received it."),
    Column("source_protocol", "string", False, "opcua, modbus, sparkplug, daq."),
    Column("source_node", "string", False, "Edge node or endpoint."),
    Column("sequence", "long", True, "Source sequence number."),
    Column("kafka_topic", "string", False, "Lineage back to Kafka."),
    Column("kafka_partition", "int", False, "Lineage; also which hot-path member owns the row."),
    Column("kafka_offset", "long", False, "Lineage back to Kafka."),
    Column("status", "string", False, "alive, stale or dead (TWIN_STATUSES)."),
    Column("status_reason", "string", False, "Why, for people."),
    Column("status_since", "timestamp", False, "Since when the status holds."),
    Column("status_as_of", "timestamp", False, "The hot path's clock when it last judged it."),
    Column("freshness_slo_ms", "long", False, "How long a value counts as fresh."),
    Column(
        "rule_state", "string", True,
        "What the stuck and rate-of-change checks carry for the sensor (JSON), so a restarted "
        "hot path resumes them.",
    ),
)  # fmt: skip


# Spark SQL's own spelling of a type (`DataType.simpleString()`), which table columns use.
_SPARK_TYPE_NAMES = {"long": "bigint", "integer": "int"}


def columns_of(columns: Iterable[Column]) -> tuple[str, ...]:
    """Record or table columns as a table contract states them: "name type"."""
    return tuple(f"{c.name} {_SPARK_TYPE_NAMES.get(c.type, c.type)}" for c in columns)


# What bronze adds to every Kafka record it lands: Kafka's lineage and the edge's identity.
KAFKA_LINEAGE = (
    "kafka_key string", "kafka_topic string", "kafka_partition int", "kafka_offset bigint",
    "kafka_timestamp timestamp", "edge_instance string", "edge_seq bigint",
)  # fmt: skip
# Both times of a record again as timestamps, for people and for time-range reads.
RECORD_TIMES = ("event_time timestamp", "receive_time timestamp")


# The feature columns of gold.features, one code path for training and serving
# (plantlake.pipelines.transforms.features computes them; FEATURE_DOCS there says what each is).
# The edge window features of high-rate vibration that gold.features averages: crest factor and
# the FFT band energies of the shipped edge filter config (ingest/config/filters.yaml; a unit
# test keeps the two in step). A site with other bands keeps them in silver.telemetry.
EDGE_FEATURES_IN_GOLD: tuple[str, ...] = (
    "crest", "band_0_50", "band_50_200", "band_200_500", "band_500_1000",
)  # fmt: skip
FEATURE_COLUMNS: tuple[str, ...] = (
    "vibration_rms_mean_15m", "vibration_rms_mean_1h", "vibration_rms_mean_24h",
    "vibration_rms_max_1h", "vibration_rms_trend_24h",
    "temperature_mean_15m", "temperature_mean_1h", "temperature_mean_24h",
    "temperature_rate_1h",
    "current_mean_1h", "current_std_1h", "current_mean_24h",
    "pressure_mean_1h", "pressure_mean_24h",
    "temperature_vibration_corr_24h",
    "hours_since_maintenance", "cycles_since_maintenance",
    *(f"vibration_{feature}_mean_1h" for feature in EDGE_FEATURES_IN_GOLD),
    # Feature version 2026-11-27.2: what tells a fault from a change of load or a stop.
    "vibration_rms_trend_6h", "temperature_trend_24h", "pressure_trend_6h", "pressure_trend_24h",
    "vibration_band_50_200_trend_24h", "vibration_band_500_1000_trend_24h",
    "flow_mean_1h", "temperature_rise_per_amp_1h", "vibration_rms_per_amp_1h",
    "pressure_per_flow_1h", "running_share_1h",
)  # fmt: skip


# Columns of silver.maintenance_events (key: SILVER_MAINTENANCE_EVENTS.key).
MAINTENANCE_EVENT_COLUMNS: tuple[Column, ...] = (
    Column("asset", "string", False, "Asset path site/line/asset."),
    Column("event", "string", False, "failure, repair or inspection."),
    Column("failure_mode", "string", True, "e.g. bearing_wear; null when the CMMS gave none."),
    Column("event_time", "timestamp", False, "When it happened, per the CMMS."),
    Column("event_time_ms", "long", False, "The same, epoch ms UTC (part of the key)."),
    Column("source_file", "string", False, "The export the event was last loaded from."),
    Column("loaded_at", "timestamp", False, "When that load ran."),
)


# The Delta table property naming the columns that file statistics cover.
STATS_COLUMNS_PROPERTY = "delta.dataSkippingStatsColumns"


@dataclass(frozen=True)
class TableRef:
    layer: str
    table: str
    key: tuple[str, ...]
    writer: str
    comment: str
    # Liquid clustering that `plantlake pipeline maintain` applies: time first where jobs read the
    # table by a time range (dedup, read-back and MERGE predicates skip files by min/max), asset
    # where readers pick assets. Empty: Spark never maintains the table (its writer does).
    cluster_by: tuple[str, ...] = ("asset",)
    # Columns Delta keeps min/max statistics for, besides `cluster_by` (which clustering needs).
    # Empty: Delta's default, the first 32 columns. Statistics cost CPU on every file written,
    # so a table read only in full or by a few columns keeps them for those alone.
    stats_columns: tuple[str, ...] = ()
    # Every column as "name type", in order, with Spark SQL's type names: what a reader may rely
    # on. tests/spark/test_lake_contract.py compares the tables jobs write with it.
    columns: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.table}"

    def path(self, lake: LakeSettings) -> str:
        return lake.table_path(self.layer, self.table)

    def ddl(self) -> str:
        """The columns as a Spark DDL schema ("asset string, value double, ...")."""
        return ", ".join(self.columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.split(" ", 1)[0] for c in self.columns)

    def merge_on(self, target: str = "t", source: str = "s") -> str:
        """The MERGE condition that matches a source row to the target row of the same key."""
        return " AND ".join(f"{target}.{k} = {source}.{k}" for k in self.key)

    def properties(self, columns: Iterable[str] | None = None) -> dict[str, str]:
        """The Delta table properties the contract sets: statistics for `stats_columns` and
        `cluster_by`, restricted to `columns` when given (an older table may lack some)."""
        if not self.stats_columns:
            return {}
        wanted = dict.fromkeys((*self.cluster_by, *self.stats_columns))
        present = None if columns is None else set(columns)
        kept = [c for c in wanted if present is None or c in present]
        return {STATS_COLUMNS_PROPERTY: ",".join(kept)}


BRONZE_TELEMETRY = TableRef(
    "bronze", "telemetry",
    key=("kafka_topic", "kafka_partition", "kafka_offset"),
    writer="plantlake pipeline run bronze",
    comment="Every parsed canonical record from Kafka, append only, with Kafka lineage.",
    # Streams read it in full; people look a reading up by sensor, time or Kafka offset.
    stats_columns=("sensor", "event_time_ms", "kafka_partition", "kafka_offset"),
    columns=(
        *columns_of(TELEMETRY_RECORD), *RECORD_TIMES, *KAFKA_LINEAGE,
        "raw_value binary", "ingest_time timestamp",
    ),
)  # fmt: skip
BRONZE_EDGE_FEATURES = TableRef(
    "bronze", "edge_features",
    key=("kafka_topic", "kafka_partition", "kafka_offset"),
    writer="plantlake pipeline run bronze",
    comment="Window features the edge computed from high-rate signals (RMS, peak, crest factor, "
    "FFT band energies), as canonical records with Kafka lineage; append only.",
    stats_columns=("sensor", "event_time_ms", "kafka_partition", "kafka_offset"),
    columns=BRONZE_TELEMETRY.columns,
)  # fmt: skip
BRONZE_DEAD_LETTER = TableRef(
    "bronze", "dead_letter",
    key=("kafka_topic", "kafka_partition", "kafka_offset"),
    writer="plantlake pipeline run bronze",
    comment="Kafka records that did not parse as a canonical record, with the reason.",
    columns=(
        *KAFKA_LINEAGE, "raw_value binary", "reason string", "refused_by string",
        "source_protocol string", "source_node string", "origin string", "ingest_time timestamp",
    ),
)  # fmt: skip

BRONZE_LIFECYCLE = TableRef(
    "bronze", "lifecycle",
    key=("kafka_topic", "kafka_partition", "kafka_offset"),
    writer="plantlake pipeline run bronze",
    comment="Birth, death, stale, rebirth and reconnect events of edge nodes and devices.",
    columns=(
        *columns_of(LIFECYCLE_RECORD), *RECORD_TIMES, *KAFKA_LINEAGE, "ingest_time timestamp",
    ),
)  # fmt: skip
REFERENCE_ASSET_REGISTRY = TableRef(
    "reference", "asset_registry",
    key=("asset", "sensor", "valid_from"),
    writer="plantlake reference load / import",
    comment="Which asset class and quantity each sensor is, valid from/to (remounts, renumbering), "
    "with the unit and address its device uses.",
    columns=(
        "asset string", "sensor string", "asset_class string", "quantity string", "site string",
        "line string", "valid_from timestamp", "valid_to timestamp",
        "unit string", "protocol string", "address string",
    ),
)  # fmt: skip
REFERENCE_UNITS = TableRef(
    "reference", "units",
    key=("unit",),
    writer="plantlake reference load",
    comment="Each accepted device unit, its quantity and the canonical unit it converts to.",
    columns=(
        "unit string", "quantity string", "canonical_unit string", "scale double",
        "offset double",
    ),
)  # fmt: skip
SILVER_TELEMETRY = TableRef(
    "silver", "telemetry",
    key=("asset", "sensor", "event_time_ms", "sequence"),
    writer="plantlake pipeline run silver",
    comment="Deduplicated readings in canonical units, joined to the registry, that passed the rules.",
    cluster_by=("event_time_ms", "asset"),
    columns=columns_of(SILVER_TELEMETRY_COLUMNS),
)  # fmt: skip
SILVER_QUARANTINE = TableRef(
    "silver", "quarantine",
    key=("kafka_topic", "kafka_partition", "kafka_offset"),
    writer="plantlake pipeline run silver (review columns: planners)",
    comment="Readings held back by a quarantine rule: the record, every failed rule, lineage, review.",
    cluster_by=("event_time_ms", "asset"),
    columns=(
        *columns_of(TELEMETRY_RECORD), *RECORD_TIMES, "asset_class string",
        "failed_rules array<struct<rule:string,action:string,reason:string>>",
        "kafka_topic string", "kafka_partition int", "kafka_offset bigint",
        "kafka_timestamp timestamp", "edge_instance string", "edge_seq bigint",
        "bronze_ingest_time timestamp", "quarantined_at timestamp",
        # Review: set by planners, null until then.
        "review_status string", "reviewer string", "decided_at timestamp", "review_note string",
        "review_decision_id string",
    ),
)  # fmt: skip

# A planner's decision on a quarantined reading (silver.quarantine_reviews.decision), and the
# review_status of silver.quarantine each one leads to.
RELEASE, CONFIRM_FAULT, NOTE = "release", "confirm_fault", "note"
REVIEW_DECISIONS = (RELEASE, CONFIRM_FAULT, NOTE)
REVIEW_STATUS = {RELEASE: "released", CONFIRM_FAULT: "confirmed_fault", NOTE: "noted"}
SILVER_QUARANTINE_REVIEWS = TableRef(
    "silver", "quarantine_reviews",
    key=("decision_id",),
    writer="plantlake app (the workbench, through delta-rs; its only writer)",
    comment="Planners' decisions on quarantined readings (release, confirm fault, note), with who "
    "and when; the silver job applies them to silver.quarantine and silver.telemetry.",
    cluster_by=(),  # the workbench writes it through delta-rs; Spark never rewrites it
    columns=(
        "decision_id string", "kafka_topic string", "kafka_partition int", "kafka_offset bigint",
        "asset string", "sensor string", "event_time_ms bigint", "decision string",
        "note string", "reviewer string", "decided_at timestamp",
        # The decision the planner saw as the reading's latest (null: none), for the 409 check.
        "supersedes string",
    ),
)  # fmt: skip
SILVER_DQ_METRICS = TableRef(
    "silver", "dq_metrics",
    key=("batch_id", "rule"),
    writer="plantlake pipeline run silver",
    comment="Per micro-batch and rule: rows checked, passed, failed, and the action taken.",
    columns=(
        "batch_id bigint", "rule string", "action string", "checked bigint", "passed bigint",
        "failed bigint", "batch_time timestamp",
    ),
)  # fmt: skip
SILVER_RULE_STATE = TableRef(
    "silver", "rule_state",
    key=("asset", "sensor"),
    writer="plantlake pipeline run silver (or cold)",
    comment="What the stuck and rate-of-change rules carry per sensor from one micro-batch to the "
    "next, so silver never re-reads its history.",
    columns=(
        "asset string", "sensor string", "last_time bigint", "prev_value double",
        "prev_time bigint", "prev_raw double", "count bigint",
        "runs map<string,struct<start:bigint,first:bigint>>",
    ),
)  # fmt: skip
# gold.twin_state's liveness verdicts: a silent dead sensor must never read as a healthy one.
ALIVE, STALE, DEAD = "alive", "stale", "dead"
TWIN_STATUSES = (ALIVE, STALE, DEAD)

GOLD_TWIN_STATE = TableRef(
    "gold", "twin_state",
    key=("asset", "sensor"),
    writer="plantlake pipeline run hot (delta-rs; its only writer)",
    comment="Latest good value per asset and sensor, with liveness: alive, stale or dead.",
    cluster_by=(),  # the hot path writes and vacuums it through delta-rs
    columns=columns_of(TWIN_STATE_COLUMNS),
)  # fmt: skip
GOLD_WATERMARKS = TableRef(
    "gold", "watermarks",
    key=("asset", "sensor"),
    writer="plantlake pipeline run gold",
    comment="Newest Good event time per asset and sensor that the gold job has aggregated: where "
    "each sensor's aggregate windows close.",
    columns=("asset string", "sensor string", "event_time_ms bigint"),
)  # fmt: skip
GOLD_OPEN_WINDOWS = TableRef(
    "gold", "open_windows",
    key=("window_ms", "asset", "sensor", "window_start_ms"),
    writer="plantlake pipeline run gold (or cold)",
    comment="The sorted values of each aggregate window not yet closed by its sensor's watermark, "
    "so a micro-batch adds its own values instead of re-reading silver.",
    columns=(
        "window_ms bigint", "asset string", "sensor string", "window_start_ms bigint",
        "quantity string", "unit string", "values array<double>",
    ),
)  # fmt: skip
# Both window tables: one row per (asset, sensor, window).
WINDOW_COLUMNS = (
    "asset string", "sensor string", "window_start timestamp", "window_end timestamp",
    "window_start_ms bigint", "quantity string", "unit string", "mean double", "std double",
    "min double", "max double", "count bigint", "p95 double",
)  # fmt: skip
GOLD_TELEMETRY_1M = TableRef(
    "gold", "telemetry_1m",
    key=("asset", "sensor", "window_start_ms"),
    writer="plantlake pipeline run gold",
    comment="1-minute event-time aggregates: mean, std, min, max, count, p95.",
    cluster_by=("window_start_ms", "asset"),
    columns=WINDOW_COLUMNS,
)  # fmt: skip
GOLD_TELEMETRY_5M = TableRef(
    "gold", "telemetry_5m",
    key=("asset", "sensor", "window_start_ms"),
    writer="plantlake pipeline run gold",
    comment="5-minute event-time aggregates: mean, std, min, max, count, p95.",
    cluster_by=("window_start_ms", "asset"),
    columns=WINDOW_COLUMNS,
)  # fmt: skip

GOLD_LATE_DATA = TableRef(
    "gold", "late_data",
    key=("gold_table", "asset", "sensor", "event_time_ms", "sequence"),
    writer="plantlake pipeline run gold",
    comment="Good readings that reached gold after their aggregate window closed: window, "
    "watermark, lateness, arrival batch. The readings stay in silver.telemetry.",
    columns=(
        "gold_table string", "asset string", "sensor string", "event_time timestamp",
        "event_time_ms bigint", "sequence bigint", "value double", "window_start timestamp",
        "window_end timestamp", "watermark timestamp", "lateness_ms bigint", "batch_id bigint",
        "arrival_time timestamp", "kafka_topic string", "kafka_partition int",
        "kafka_offset bigint",
    ),
)  # fmt: skip

# Issue 5: maintenance ground truth, features, training sets, predictions and work orders.
SILVER_MAINTENANCE_EVENTS = TableRef(
    "silver", "maintenance_events",
    key=("asset", "event", "event_time_ms"),
    writer="plantlake pipeline run cmms",
    comment="Failures, repairs and inspections from the CMMS export: the ML ground truth.",
    columns=columns_of(MAINTENANCE_EVENT_COLUMNS),
)  # fmt: skip
GOLD_FEATURES = TableRef(
    "gold", "features",
    key=("asset", "feature_time_ms"),
    writer="plantlake pipeline run features",
    comment="Per asset every 5 minutes: rolling statistics over event time, stamped with the time "
    "they became knowable. One code path for training and scoring.",
    cluster_by=("feature_time_ms", "asset"),
    columns=(
        "asset string", "asset_class string", "feature_time timestamp", "feature_time_ms bigint",
        "knowable_at timestamp", "knowable_at_ms bigint", "readings bigint",
        "feature_version string", *(f"{name} double" for name in FEATURE_COLUMNS),
        "computed_at timestamp",
    ),
)  # fmt: skip
GOLD_TRAINING_SETS = TableRef(
    "gold", "training_sets",
    key=("run_id", "asset", "label_time_ms"),
    writer="plantlake models train",
    comment="Every training run's labelled rows (features as of each label time, split), by run.",
    columns=(
        "asset string", "label_time_ms bigint", "label bigint", "failure_mode string",
        "time_to_failure_h double", "asset_class string", "feature_time_ms bigint",
        "knowable_at_ms bigint", *(f"{name} double" for name in FEATURE_COLUMNS),
        "staleness_ms bigint", "split string", "run_id string", "training_cutoff_ms bigint",
        "created_at timestamp", "label_time timestamp",
    ),
)  # fmt: skip
GOLD_PREDICTIONS = TableRef(
    "gold", "predictions",
    key=("model_name", "model_version", "asset", "feature_time_ms"),
    writer="plantlake pipeline run features (streaming scoring) or plantlake models score (batch)",
    comment="Scores of the champion models per asset and feature time.",
    columns=(
        "model_name string", "model_version string", "model_kind string", "asset string",
        "asset_class string", "feature_time timestamp", "feature_time_ms bigint",
        "knowable_at timestamp", "score double", "threshold double", "alert boolean",
        "horizon_hours double", "scoring_mode string", "scored_at timestamp",
    ),
)  # fmt: skip
GOLD_WORK_ORDERS = TableRef(
    "gold", "work_orders",
    key=("work_order_id",),
    writer="plantlake pipeline run features (streaming scoring) or plantlake models score (batch)",
    comment="At most one open work order per asset and failure mode, with the evidence that fired it.",
    columns=(
        "work_order_id string", "asset string", "asset_class string", "failure_mode string",
        "status string", "opened_at timestamp", "opened_feature_time_ms bigint",
        "opened_score double", "latest_feature_time timestamp", "latest_feature_time_ms bigint",
        "latest_score double", "alert_count bigint", "model_name string", "model_version string",
        "model_kind string", "threshold double", "horizon_hours double", "evidence string",
        "closed_at timestamp", "closed_event string", "closed_event_time_ms bigint",
        "closed_reason string", "created_at timestamp", "updated_at timestamp",
        "alerted_at timestamp",
    ),
)  # fmt: skip

# A planner's verdict on a work order (gold.work_order_feedback.verdict).
ACKNOWLEDGED, FALSE_ALARM, DONE = "acknowledged", "false_alarm", "done"
FEEDBACK_VERDICTS = (ACKNOWLEDGED, FALSE_ALARM, DONE)
GOLD_WORK_ORDER_FEEDBACK = TableRef(
    "gold", "work_order_feedback",
    key=("feedback_id",),
    writer="plantlake app (the workbench, through delta-rs; its only writer)",
    comment="Planners' verdicts on work orders (acknowledged, false alarm, done) with a note: a "
    "label source for the training set builder.",
    cluster_by=(),
    columns=(
        "feedback_id string", "work_order_id string", "asset string", "failure_mode string",
        "verdict string", "note string", "planner string", "decided_at timestamp",
        "decided_at_ms bigint",
    ),
)  # fmt: skip

TABLES: tuple[TableRef, ...] = (
    BRONZE_TELEMETRY, BRONZE_EDGE_FEATURES, BRONZE_DEAD_LETTER, BRONZE_LIFECYCLE,
    REFERENCE_ASSET_REGISTRY, REFERENCE_UNITS,
    SILVER_TELEMETRY, SILVER_QUARANTINE, SILVER_DQ_METRICS, SILVER_RULE_STATE,
    GOLD_TWIN_STATE, GOLD_WATERMARKS, GOLD_OPEN_WINDOWS, GOLD_TELEMETRY_1M, GOLD_TELEMETRY_5M,
    GOLD_LATE_DATA,
    SILVER_MAINTENANCE_EVENTS, GOLD_FEATURES, GOLD_TRAINING_SETS, GOLD_PREDICTIONS,
    GOLD_WORK_ORDERS, SILVER_QUARANTINE_REVIEWS, GOLD_WORK_ORDER_FEEDBACK,
)  # fmt: skip
