"""Bronze layer: Kafka to Delta, append only, exactly once. Telemetry, edge window features,
lifecycle events and edge dead letters land in their tables; records that do not parse land in
bronze.dead_letter."""

from __future__ import annotations

import operator
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StringType, StructField, StructType

from plantlake.adapters.checkpoints import start_exclusive
from plantlake.adapters.delta import append_once, read_kafka_stream, table_exists, writer_id
from plantlake.adapters.spark import first_row, scheduler_pool
from plantlake.core.config import Settings
from plantlake.core.contracts import (
    BRONZE_DEAD_LETTER,
    BRONZE_EDGE_FEATURES,
    BRONZE_LIFECYCLE,
    BRONZE_TELEMETRY,
    EDGE_DEAD_LETTER_RECORD,
    EPOCH_MS_END,
    EPOCH_MS_FIELDS,
    EPOCH_MS_MIN,
    LIFECYCLE_KINDS,
    LIFECYCLE_RECORD,
    NOT_EPOCH_MS,
    QUALITIES,
    RECORD_SCHEMA_VERSION,
    TELEMETRY_RECORD,
    TableRef,
)
from plantlake.core.contracts import Column as ContractColumn
from plantlake.core.topics import INSTANCE_HEADER, SEQ_HEADER, topic
from plantlake.pipelines.transforms.schemas import record_schema

LINEAGE = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
# Set by the edge forwarder: (edge_instance, edge_seq) names one edge record, so a record that
# reached Kafka twice (edge crash between Kafka's ack and the buffer's) can be recognised.
EDGE_IDENTITY = ("edge_instance", "edge_seq")
Check = Callable[[Column], Column]


def _header(name: str) -> Column:
    """A Kafka header's value as a string, or null when absent."""
    matches = F.filter(F.col("headers"), lambda h: h["key"] == F.lit(name))
    return F.when(F.size(matches) > 0, matches[0]["value"].cast("string"))


# What a JSON value of each contract type may start with. Spark's JSON reader is lenient: it
# turns `"value": "hot"` into null and `"asset": 42` into "42", so the raw text is checked too.
_JSON_VALUE = {
    "string": r'"',
    "int": r"-?\d+\s*+[,}]",
    "long": r"-?\d+\s*+[,}]",
    "double": r"-?\d|NaN\b",  # NaN: the contract allows it for a missing value
}
# Spark's column for a record that did not parse in full (bad JSON, or a value of the wrong type).
CORRUPT = "_corrupt_record"
# How a non-string JSON value reads once from_json has made it a string: a number, a literal,
# an object or array, or a quoted NaN/Infinity.
_NON_STRING_START = ("-", "+", '"', "{", "[", *"0123456789")
_NON_STRING_TEXT = ("true", "false", "NaN", "Infinity", "+Infinity", "-Infinity", "INF", "+INF", "-INF")  # fmt: skip


def _type_errors(text: Column, columns: Sequence[ContractColumn]) -> list[Column]:
    """One reason per field whose JSON value has the wrong type (null is left to nullability).

    Records are flat objects, so a field is a key at any depth; a key inside a string value is
    preceded by an escaped quote, which the look-behind skips. Whitespace is matched
    possessively (`*+`): a backtracking star could match none and test the look-ahead on a space.
    """
    return [
        F.when(
            text.rlike(rf'(?<!\\)"{c.name}"\s*+:\s*+(?!null\b|{_JSON_VALUE[c.type]})'),
            F.lit(f"{c.name} should be a JSON {c.type}"),
        )
        for c in columns
        if c.type in _JSON_VALUE
    ]


def _may_be_mistyped(text: Column, rec: Column, c: ContractColumn) -> Column:
    """False when the parsed field shows its JSON value has the contract's type; true when only
    the raw text can tell (then `_type_errors` decides)."""
    value = rec[c.name]
    if c.type == "string":
        # from_json renders a number, literal, object or array as text; a JSON string that reads
        # like one (rare) is sent to the regexes too.
        return value.isNotNull() & (
            F.substring(value, 1, 1).isin(*_NON_STRING_START) | value.isin(*_NON_STRING_TEXT)
        )
    # A number field is null for a missing key or a JSON null, and also for "" (no corrupt
    # record is flagged for that); a quoted "NaN" or "Infinity" parses as a double.
    present = text.contains(f'"{c.name}"')
    not_null = ~(text.contains(f'"{c.name}":null') | text.contains(f'"{c.name}": null'))
    mistyped = value.isNull() & present & not_null
    if c.type == "double":
        mistyped = mistyped | F.isnan(value) | value.isin(float("inf"), float("-inf"))
    return mistyped


def _needs_regexes(text: Column, rec: Column, columns: Sequence[ContractColumn]) -> Column:
    """Whether a record must be checked on its raw text: it did not parse in full, or a field
    may hold a value of another JSON type, or it nests (a key at any depth counts), or holds a
    NaN or Infinity outside the contract's fields (from_json accepts those, JSON does not)."""
    suspects = [_may_be_mistyped(text, rec, c) for c in columns if c.type in _JSON_VALUE]
    return (
        rec.isNull()
        | rec[CORRUPT].isNotNull()
        | ~text.startswith("{")
        | (F.locate("{", text, 2) > 0)
        | text.contains("[")
        | text.contains("NaN")
        | text.contains("Infinity")
        | reduce(operator.or_, suspects, F.lit(False))
    )


def _reasons(text: Column, rec: Column, slow: Column, contract: RecordContract) -> Column:
    """Every way a parsed record breaks its contract, joined ("" when none)."""
    typed = F.when(slow, F.concat_ws("; ", *_type_errors(text, contract.columns)))
    missing = [
        F.when(rec[c.name].isNull(), F.lit(f"{c.name} is missing or of the wrong type"))
        for c in contract.columns
        if not c.nullable
    ]
    checked = [check(rec) for check in contract.checks]
    return F.concat_ws("; ", *missing, F.when(typed != "", typed), *checked)


def _may_break(rec: Column, slow: Column, contract: RecordContract) -> Column:
    """True on every record that `_reasons` could find fault with, in a few null tests: the
    reasons (strings joined per record) are built for those records alone."""
    missing = [rec[c.name].isNull() for c in contract.columns if not c.nullable]
    failed = [check(rec).isNotNull() for check in contract.checks]
    return reduce(operator.or_, failed, reduce(operator.or_, missing, slow))


def _with_parse_error(
    parsed: DataFrame, contract: RecordContract, *, rec: str = "rec", where: Column | None = None
) -> DataFrame:
    """`parsed` with `parse_error`: why the record in column `rec` breaks `contract`, or null
    when it does not (and on the rows `where` leaves out).

    Most records parse in full with every field of its JSON type, which the parsed struct alone
    shows; only the others pay for a second JSON parse and a regex per field on the raw text.
    The intermediate columns are kept apart so that Spark computes each once per row.
    """
    text = F.col("raw_value").cast("string")
    record = F.col(rec)
    checked = parsed.withColumn("_slow", _needs_regexes(text, record, contract.columns))
    slow = F.col("_slow")
    reasons = F.when(_may_break(record, slow, contract), _reasons(text, record, slow, contract))
    checked = checked.withColumn("_reasons", F.coalesce(reasons, F.lit("")))
    # A JSON object always has a type: get_json_object is null for malformed text.
    json_ok = ~F.col("_slow") | (F.get_json_object(text, "$").isNotNull() & text.startswith("{"))
    error = (
        F.when(~json_ok, F.lit("payload is not a JSON object"))
        .when(F.col("_reasons") == "", F.lit(None))
        .otherwise(F.col("_reasons"))
    )
    if where is not None:
        error = F.when(where, error)
    return checked.withColumn("parse_error", error).drop("_slow", "_reasons")


_JSON_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}


def _schema(columns: Sequence[ContractColumn]) -> StructType:
    return StructType([*record_schema(columns).fields, StructField(CORRUPT, StringType())])


def _by_kind(key: Column, values: Mapping[str, Column]) -> Column:
    """`values[key]`, as a CASE expression: only the matching branch is evaluated per row."""
    cases = iter(values.items())
    first, value = next(cases)
    column = F.when(key == first, value)
    for name, value in cases:
        column = column.when(key == name, value)
    return column


@dataclass(frozen=True)
class RecordContract:
    """What bronze holds one topic's records to: their columns, and extra checks on the parsed
    record (each a Column that is a reason, or null when the record passes)."""

    columns: tuple[ContractColumn, ...]
    checks: tuple[Check, ...] = ()


def _parse(
    kafka_rows: DataFrame, contracts: Mapping[str, RecordContract], kind: Column
) -> DataFrame:
    """Kafka rows parsed once each, by the contract `kind` names (one struct column per kind)."""
    text = F.col("value").cast("string")
    parsed = kafka_rows.select(
        F.col("key").cast("string").alias("kafka_key"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("value").alias("raw_value"),
        _header(INSTANCE_HEADER).alias("edge_instance"),
        _header(SEQ_HEADER).cast("long").alias("edge_seq"),
        kind.alias("kind"),
        *(
            F.when(kind == name, F.from_json(text, _schema(c.columns), _JSON_OPTIONS)).alias(name)
            for name, c in contracts.items()
        ),
    )
    return parsed


def parse_records(
    kafka_rows: DataFrame, columns: Sequence[ContractColumn], *, checks: Sequence[Check] = ()
) -> DataFrame:
    """Kafka rows to parsed rows with `rec` (the record struct) and `parse_error`.

    Grain in and out: one Kafka record. `checks` are extra reasons (Columns, null when fine)
    computed from `rec`; rows whose `parse_error` is null keep their contract.
    """
    contract = RecordContract(tuple(columns), tuple(checks))
    parsed = _parse(kafka_rows, {"rec": contract}, F.lit("rec")).drop("kind")
    return _with_parse_error(parsed, contract)


def parse_batch(kafka_rows: DataFrame, *, topics: Mapping[str, str]) -> DataFrame:
    """A micro-batch of every bronze topic, each record parsed once by its topic's contract.

    Grain in and out: one Kafka record. `topics` maps each key of `TOPIC_KINDS` to its topic
    name; the result has `kind` (window features are of the telemetry kind: one contract, one
    parse), one record struct column per kind (null on the other kinds' rows) and the telemetry
    records' `parse_error`. Persist it: `records_of` takes one kind's
    rows from it as `parse_records` gives them, and `batch_dead_letters` every record refused.
    """
    kind = _by_kind(F.col("topic"), {topics[key]: F.lit(k) for key, k in TOPIC_KINDS.items()})
    return _with_parse_error(
        _parse(kafka_rows, CONTRACTS, kind),
        CONTRACTS[_CHECKED_WHEN_PARSED],
        rec=_CHECKED_WHEN_PARSED,
        where=F.col("kind") == _CHECKED_WHEN_PARSED,
    )


def records_of(parsed: DataFrame, kind: str) -> DataFrame:
    """One kind's rows of a `parse_batch` result, as `parse_records` gives them (`rec`,
    `parse_error`)."""
    others = [name for name in CONTRACTS if name != kind]
    rows = parsed.where(F.col("kind") == kind).drop("kind", *others).withColumnRenamed(kind, "rec")
    if kind == _CHECKED_WHEN_PARSED:
        return rows
    return _with_parse_error(rows.drop("parse_error"), CONTRACTS[kind])


def _epoch_ms(name: str) -> Check:
    """A check that the time field `name` is an epoch-millisecond time (`is_epoch_ms`):
    outside that range, timestamp_millis overflows and would stop the batch."""

    def check(rec: Column) -> Column:
        stamp = rec[name]
        reason = F.concat(F.lit(f"{name} "), stamp.cast("string"), F.lit(f" {NOT_EPOCH_MS}"))
        return F.when((stamp < EPOCH_MS_MIN) | (stamp >= EPOCH_MS_END), reason)

    return check


_TELEMETRY_CHECKS: tuple[Check, ...] = (
    *(_epoch_ms(name) for name in EPOCH_MS_FIELDS),
    lambda rec: F.when(
        ~rec["quality"].isin(*QUALITIES), F.lit("quality is not Good/Uncertain/Bad")
    ),
    lambda rec: F.when(
        rec["schema_version"] != RECORD_SCHEMA_VERSION, F.lit("unsupported schema_version")
    ),
)
_LIFECYCLE_CHECKS: tuple[Check, ...] = (
    *(_epoch_ms(name) for name in EPOCH_MS_FIELDS),
    lambda rec: F.when(~rec["kind"].isin(*LIFECYCLE_KINDS), F.lit("unknown lifecycle kind")),
)
# Keyed like TOPIC_KEYS: the topic each kind of record arrives on.
CONTRACTS = {
    "telemetry": RecordContract(TELEMETRY_RECORD, _TELEMETRY_CHECKS),
    "lifecycle": RecordContract(LIFECYCLE_RECORD, _LIFECYCLE_CHECKS),
    "dead_letter": RecordContract(EDGE_DEAD_LETTER_RECORD),
}
# The kind of record each topic carries. Window features are canonical records (sensor
# "vibration.band_50_200" and the like) with a table of their own, bronze.edge_features.
TOPIC_KINDS = {
    "telemetry": "telemetry",
    "edge_features": "telemetry",
    "lifecycle": "lifecycle",
    "dead_letter": "dead_letter",
}
TOPIC_KEYS = tuple(TOPIC_KINDS)
# Checked in the parsing pass, as it is nearly all of a batch; the other kinds are checked when
# records_of takes their (few) rows. Every contract's checks in one projection outgrow the 64 KB
# a generated Java method may have, and Spark then runs that plan several times slower.
_CHECKED_WHEN_PARSED = "telemetry"


def parse_telemetry(kafka_rows: DataFrame) -> DataFrame:
    """Kafka telemetry rows parsed as canonical records (see `parse_records`)."""
    return parse_records(kafka_rows, TELEMETRY_RECORD, checks=_TELEMETRY_CHECKS)


def parse_lifecycle(kafka_rows: DataFrame) -> DataFrame:
    return parse_records(kafka_rows, LIFECYCLE_RECORD, checks=_LIFECYCLE_CHECKS)


def parse_edge_dead_letters(kafka_rows: DataFrame) -> DataFrame:
    return parse_records(kafka_rows, EDGE_DEAD_LETTER_RECORD)


def telemetry_rows(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.telemetry: the record, event/receive time, lineage, raw payload."""
    return parsed.where(F.col("parse_error").isNull()).select(
        *(F.col(f"rec.{c.name}").alias(c.name) for c in TELEMETRY_RECORD),
        F.timestamp_millis(F.col("rec.event_time_ms")).alias("event_time"),
        F.timestamp_millis(F.col("rec.receive_time_ms")).alias("receive_time"),
        "kafka_key", *LINEAGE, *EDGE_IDENTITY, "raw_value",
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def lifecycle_rows(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.lifecycle: the event, its times as timestamps, lineage."""
    return parsed.where(F.col("parse_error").isNull()).select(
        *(F.col(f"rec.{c.name}").alias(c.name) for c in LIFECYCLE_RECORD),
        F.timestamp_millis(F.col("rec.event_time_ms")).alias("event_time"),
        F.timestamp_millis(F.col("rec.receive_time_ms")).alias("receive_time"),
        "kafka_key", *LINEAGE, *EDGE_IDENTITY,
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def dead_letter_rows(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.dead_letter for records bronze could not parse: what arrived and why."""
    return parsed.where(F.col("parse_error").isNotNull()).select(
        "kafka_key", *LINEAGE, *EDGE_IDENTITY, "raw_value",
        F.col("parse_error").alias("reason"),
        F.lit("bronze").alias("refused_by"),
        F.lit(None).cast("string").alias("source_protocol"),
        F.lit(None).cast("string").alias("source_node"),
        F.lit(None).cast("string").alias("origin"),
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def edge_dead_letter_rows(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.dead_letter for input an edge process refused: its reason, raw bytes, origin."""
    return parsed.where(F.col("parse_error").isNull()).select(
        "kafka_key", *LINEAGE, *EDGE_IDENTITY,
        F.unbase64(F.col("rec.raw")).alias("raw_value"),
        F.col("rec.reason").alias("reason"),
        F.lit("edge").alias("refused_by"),
        F.col("rec.source_protocol").alias("source_protocol"),
        F.col("rec.source_node").alias("source_node"),
        F.col("rec.origin").alias("origin"),
        F.current_timestamp().alias("ingest_time"),
    )  # fmt: skip


def _part_sizes(parsed: DataFrame, *, features_topic: str) -> dict[str, int]:
    """How many rows each bronze table gets from a `parse_batch` result (one small job)."""
    checked = [
        records_of(parsed, kind).select(F.lit(kind).alias("kind"), "kafka_topic", "parse_error")
        for kind in CONTRACTS
    ]
    ok = F.col("parse_error").isNull()
    feature = F.col("kafka_topic") == features_topic
    counts = reduce(DataFrame.unionByName, checked).agg(
        F.count_if(ok & (F.col("kind") == "telemetry") & ~feature).alias("telemetry"),
        F.count_if(ok & (F.col("kind") == "telemetry") & feature).alias("edge_features"),
        F.count_if(ok & (F.col("kind") == "lifecycle")).alias("lifecycle"),
        F.count_if(~ok | (F.col("kind") == "dead_letter")).alias("dead_letter"),
    )
    return first_row(counts).asDict()


def batch_dead_letters(parsed: DataFrame) -> DataFrame:
    """Rows of bronze.dead_letter from a `parse_batch` result: records of any topic bronze
    refused, and the edge's dead letters."""
    refused = [dead_letter_rows(records_of(parsed, kind)) for kind in CONTRACTS]
    edge = edge_dead_letter_rows(records_of(parsed, "dead_letter"))
    return reduce(DataFrame.unionByName, refused, edge)


def _not_good_telemetry() -> Column:
    """True on the rows of a `parse_batch` result that bronze.telemetry does not take."""
    telemetry = F.coalesce(F.col("kind") == "telemetry", F.lit(False))
    return ~telemetry | F.col("parse_error").isNotNull()


def _refused_telemetry() -> Column:
    """True on the telemetry records bronze refused (then the rest must parse telemetry too)."""
    return (F.col("kind") == "telemetry") & F.col("parse_error").isNotNull()


# How long (in 50 ms polls) land_batch waits for the telemetry pass's counts, which Spark hands
# over as the write's query ends. Without them it takes the full second pass, which is correct.
_OBSERVATION_POLLS = 40


def _observed(counts: Observation) -> dict[str, int] | None:
    """An observation's figures, or None when it has none: the write was skipped as already
    committed (a retried batch), or the figures did not arrive in time."""
    if counts._jo is None:  # never attached to a query
        return None
    future = counts._jo.future()  # public in Spark 4; `Observation.get` would wait for ever
    for _ in range(_OBSERVATION_POLLS):
        if future.isCompleted():
            return counts.get
        time.sleep(0.05)
    return None


def _rest_of_batch(
    batch: DataFrame, names: Mapping[str, str], figures: dict[str, int] | None
) -> DataFrame:
    """The rows of a batch that the reading passes did not land, parsed (see `parse_batch`).

    None of them when the passes' figures say so (then no record is read again), and no
    readings of a topic that had none refused.
    """
    if figures is not None and figures["rest"] == 0 and figures["refused_features"] == 0:
        return parse_batch(batch.where(F.lit(False)), topics=names)
    if figures is not None:
        skipped = [
            names[key]
            for key, refused in (("telemetry", "refused"), ("edge_features", "refused_features"))
            if figures[refused] == 0
        ]
        batch = batch.where(~F.col("topic").isin(*skipped)) if skipped else batch
    return parse_batch(batch, topics=names).where(_not_good_telemetry())


def _land_features(
    batch: DataFrame, settings: Settings, names: Mapping[str, str], *, app_id: str,
    batch_id: int, existing: set[str], count: int | None,
) -> int | None:  # fmt: skip
    """Append the batch's good window features to bronze.edge_features, in a pass that parses
    the features topic's records alone; returns how many it refused (they go to the dead
    letters with the rest), None when unknown.

    Nothing is read when the batch has no features (`count`, None when unknown) and the
    table exists.
    """
    path = BRONZE_EDGE_FEATURES.path(settings.lake)
    if count == 0 and (path in existing or table_exists(batch.sparkSession, path)):
        existing.add(path)
        return 0
    refused = Observation(f"bronze_features_{uuid.uuid4().hex}")
    features = batch.where(F.col("topic") == names["edge_features"])
    parsed = parse_batch(features, topics=names).observe(
        refused, F.count_if(_refused_telemetry()).alias("refused")
    )
    rows = telemetry_rows(records_of(parsed, "telemetry"))
    append_once(rows, path, app_id=app_id, batch_id=batch_id,
                properties=BRONZE_EDGE_FEATURES.properties())  # fmt: skip
    existing.add(path)
    figures = _observed(refused)
    return None if figures is None else figures["refused"]


def land_batch(
    batch: DataFrame, settings: Settings, *, app_id: str, batch_id: int, existing: set[str]
) -> None:
    """Parse one micro-batch and append each table's part to it, exactly once.

    Nearly every record is a good reading, so one pass parses the batch's telemetry, appends
    bronze.telemetry and counts the other records on the way (observations, no extra job).
    Window features, when the batch has any, are parsed and appended to bronze.edge_features
    in a pass over their topic alone. Only a batch that holds others is read again for
    bronze.lifecycle and bronze.dead_letter, and then only its other topics unless a reading
    was refused. Spark's progress counts these reads in `numInputRows`, so such a batch reports
    more rows than it had.

    An empty part is not committed, except to create its table (`existing` holds the tables
    known to be there): a batch id a table skips is one it never needs, as Delta only skips
    (app id, batch id) pairs at or below the last one it committed. The telemetry part is known
    to be empty only after its pass, so a batch without good telemetry commits an empty version.
    """
    names = {key: topic(key).name(settings.kafka.topic_prefix) for key in TOPIC_KEYS}
    arrived = Observation(f"bronze_topics_{uuid.uuid4().hex}")
    counts = Observation(f"bronze_{uuid.uuid4().hex}")
    is_feature = F.col("topic") == names["edge_features"]
    # Counted before the filter, which keeps the features out of this pass (they have their own).
    telemetry_pass = batch.observe(arrived, F.count_if(is_feature).alias("features"))
    parsed = parse_batch(telemetry_pass.where(~is_feature), topics=names).observe(
        counts,
        F.count_if(_not_good_telemetry()).alias("rest"),
        F.count_if(_refused_telemetry()).alias("refused"),
    )
    telemetry = BRONZE_TELEMETRY.path(settings.lake)
    rows = telemetry_rows(records_of(parsed, "telemetry"))
    append_once(
        rows, telemetry, app_id=app_id, batch_id=batch_id, properties=BRONZE_TELEMETRY.properties()
    )
    existing.add(telemetry)
    figures, features = _observed(counts), _observed(arrived)
    refused_features = _land_features(
        batch, settings, names, app_id=app_id, batch_id=batch_id, existing=existing,
        count=None if features is None else features["features"],
    )  # fmt: skip
    if figures is not None and refused_features is not None:
        figures = {**figures, "refused_features": refused_features}
    else:
        figures = None
    # With nothing else in the batch, the rest is not even planned (about a second on these
    # wide expressions), except to create a table that is still missing.
    nothing_else = figures is not None and figures["rest"] == 0 and refused_features == 0
    rest = None if nothing_else else _rest_of_batch(batch, names, figures).persist()
    try:
        sizes = (
            _part_sizes(rest, features_topic=names["edge_features"])
            if rest is not None
            else dict.fromkeys(_REST_PARTS.values(), 0)
        )
        for ref, part in _REST_PARTS.items():
            path = ref.path(settings.lake)
            size = sizes[part]
            if size == 0 and (path in existing or table_exists(batch.sparkSession, path)):
                existing.add(path)
                continue
            source = rest if rest is not None else _rest_of_batch(batch, names, figures)
            rows = _part_rows(ref, source)
            append_once(rows, path, app_id=app_id, batch_id=batch_id, properties=ref.properties())
            existing.add(path)
    finally:
        if rest is not None:
            rest.unpersist()


# The tables a batch's rest lands in, each with its part of `_part_sizes`.
_REST_PARTS: dict[TableRef, str] = {
    BRONZE_LIFECYCLE: "lifecycle",
    BRONZE_DEAD_LETTER: "dead_letter",
}


def _part_rows(ref: TableRef, rest: DataFrame) -> DataFrame:
    """The rows of bronze.lifecycle or bronze.dead_letter in a batch's rest."""
    if ref is BRONZE_LIFECYCLE:
        return lifecycle_rows(records_of(rest, "lifecycle"))
    return batch_dead_letters(rest)


def run(spark: SparkSession, settings: Settings, *, once: bool) -> StreamingQuery:
    """Start the bronze query; `once` processes what is available now and stops."""
    checkpoint = settings.lake.checkpoint_path("bronze")
    app_id = f"bronze:{writer_id(spark, checkpoint)}"
    topics = [topic(key).name(settings.kafka.topic_prefix) for key in TOPIC_KEYS]
    options = settings.pipeline
    source = read_kafka_stream(
        spark, settings, ",".join(topics), max_per_trigger=options.bronze_max_offsets
    )
    every = None if once else options.bronze_trigger
    existing: set[str] = set()

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        land_batch(batch, settings, app_id=app_id, batch_id=batch_id, existing=existing)

    with scheduler_pool(spark, "bronze"):
        return start_exclusive(source, write_batch, settings, checkpoint, job="bronze",
                               every=every)  # fmt: skip
