"""Evaluation of the data-quality expectations on silver rows as Spark plans: the failures per
row, the state the sequence rules carry, the counts per rule, and routing by action."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from plantlake.core.contracts import SILVER_RULE_STATE
from plantlake.pipelines.transforms.expectations import BLOCKING_ACTIONS, Rule
from plantlake.pipelines.transforms.rules import columns as c

DQ_FAILURE_TYPE = "struct<rule:string,action:string,reason:string>"
DQ_FAILURES_TYPE = f"array<{DQ_FAILURE_TYPE}>"
METRICS_SCHEMA = (
    "batch_id long, rule string, kind string, action string, checked long, passed long, failed long"
)


class Routed(NamedTuple):
    """Checked rows by destination (see `split_by_action`)."""

    kept: DataFrame
    quarantined: DataFrame
    dropped: DataFrame


def rule_scope(rule: Rule) -> Column:
    """Whether a row is one the rule checks (false for unknown quantities, units, classes)."""
    return F.coalesce(rule.params.scope(), F.lit(False))


def _failure(rule: Rule, *, now_ms: int) -> Column:
    """The rule's failure struct for a row, or null when the row passes or is out of scope."""
    fails, reason = rule.params.failure(rule.name, now_ms=now_ms)
    return F.when(
        rule_scope(rule) & fails,
        F.struct(
            F.lit(rule.name).alias("rule"),
            F.lit(rule.action).alias("action"),
            reason.alias("reason"),
        ),
    )


def _implausible(rules: Sequence[Rule], *, now_ms: int) -> Column:
    """Whether a row's value fails a plausibility rule (range) it is in scope of, whatever the
    action: the sequence rules do not compare with such a value."""
    flag = F.lit(False)
    for r in rules:
        if r.params.bounds_plausibility:
            fails = r.params.failure(r.name, now_ms=now_ms)[0]
            flag = flag | F.coalesce(rule_scope(r) & fails, F.lit(False))
    return flag


# What the rate-of-change and stuck rules carry per sensor from one micro-batch to the next
# (silver.rule_state; the hot path's SensorChecks holds the same): the last event time seen, the
# last usable value and its time, the last non-null value, how many non-null values there were,
# and per stuck rule the (event time, count) of the reading that began the current unchanged run.
CARRIED_SCHEMA = SILVER_RULE_STATE.ddl()
_RUNS_TYPE = "map<string, struct<start:long, first:long>>"
_CARRY_TYPE = (
    "struct<last_time:long, prev_value:double, prev_time:long, prev_raw:double, count:long, "
    f"runs:{_RUNS_TYPE}>"
)
CARRY = "dq_carry"  # the column apply_rules adds: the carried state as of the row, or null


def _with_sequences(
    rows: DataFrame, rules: Sequence[Rule], *, carried: DataFrame | None, now_ms: int
) -> DataFrame:
    """Rows plus, per row, what the rate-of-change and stuck rules need from the readings of the
    same sensor before it, ordered by event time: in the batch, or carried over from earlier
    batches (`carried`, CARRIED_SCHEMA), never re-read from silver.

    Grain in and out: one reading. Working columns (`rules.columns`): usable (a plausible value
    for comparing: not null/NaN, not Bad, inside its ranges), in_order (newer than everything
    carried), prev_value/prev_time (the last usable reading before), prev_raw (the last non-null
    value before), count (non-null readings so far), and per rule that tracks runs (stuck)
    run_start/run_first (event time and `count` of the reading that began the current run of
    unchanged values); plus CARRY, the carried state as of the row. A row no newer than the carried state
    cannot be placed in the sequence: the sequence rules pass it and it carries nothing.
    """
    t = F.col("event_time_ms")
    usable = (
        c.value().isNotNull()
        & F.coalesce(F.col("quality") != "Bad", F.lit(True))
        & ~_implausible(rules, now_ms=now_ms)
    )
    types = {"last_time": "long", "prev_value": "double", "prev_time": "long",
             "prev_raw": "double", "count": "long", "runs": _RUNS_TYPE}  # fmt: skip
    # What was carried in, per sensor (nulls for a sensor seen first).
    was = {name: F.lit(None).cast(kind) for name, kind in types.items()}
    batch = rows.withColumn(c.USABLE, usable)
    if carried is not None:
        carry_in = carried.select(
            "asset", "sensor", *(F.col(k).alias(f"{c.TMP}c_{k}") for k in was)
        )  # fmt: skip
        batch = batch.join(F.broadcast(carry_in), ["asset", "sensor"], "left")
        was = {k: F.col(f"{c.TMP}c_{k}") for k in was}
    in_order = F.coalesce(t > was["last_time"], F.lit(True))
    batch = batch.withColumn(c.IN_ORDER, in_order)
    order = Window.partitionBy("asset", "sensor", c.IN_ORDER).orderBy(t, "value")
    before = order.rowsBetween(Window.unboundedPreceding, -1)
    upto = order.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    v, ok = c.value(), F.col(c.USABLE)
    count0 = F.coalesce(was["count"], F.lit(0)).cast("long")

    def last(col: Column, frame) -> Column:
        return F.last(col, ignorenulls=True).over(frame)

    seq = batch.withColumns({
        c.PREV_VALUE: F.coalesce(last(F.when(ok, v), before), was["prev_value"]),
        c.PREV_TIME: F.coalesce(last(F.when(ok, t), before), was["prev_time"]),
        c.PREV_RAW: F.coalesce(last(v, before), was["prev_raw"]),
        c.COUNT: count0 + F.count(v).over(upto),
    })  # fmt: skip
    runs = {}
    tracked = []  # the rules that track a run of readings (stuck)
    for rule in rules:
        starts = rule.params.run_starts(v, F.col(c.PREV_RAW))
        if starts is None:
            continue
        name = rule.name
        tracked.append(name)
        runs[c.run_start(name)] = F.coalesce(last(F.when(starts, t), upto),
                                             was["runs"][name]["start"])  # fmt: skip
        runs[c.run_first(name)] = F.coalesce(last(F.when(starts, F.col(c.COUNT)), upto),
                                             was["runs"][name]["first"])  # fmt: skip
    if runs:
        seq = seq.withColumns(runs)
    carry = F.struct(
        t.alias("last_time"),
        F.coalesce(last(F.when(ok, v), upto), was["prev_value"]).alias("prev_value"),
        F.coalesce(last(F.when(ok, t), upto), was["prev_time"]).alias("prev_time"),
        F.coalesce(last(v, upto), was["prev_raw"]).alias("prev_raw"),
        F.col(c.COUNT).alias("count"),
        (
            F.create_map(*(
                x for name in tracked
                for x in (F.lit(name), F.struct(F.col(c.run_start(name)).alias("start"),
                                                F.col(c.run_first(name)).alias("first")))
            )) if tracked else F.lit(None)
        ).cast(_RUNS_TYPE).alias("runs"),
    )  # fmt: skip
    return seq.withColumn(CARRY, F.when(F.col(c.IN_ORDER), carry))


def apply_rules(
    rows: DataFrame, rules: Sequence[Rule], *, carried: DataFrame | None, now_ms: int
) -> DataFrame:
    """Evaluate every rule on every row; adds `dq_failures` (DQ_FAILURES_TYPE) and CARRY.

    Grain in and out: one silver reading (deduplicate first). `rows` needs asset, sensor,
    asset_class, quantity, value (canonical, NaN as missing), unit, quality, event_time_ms and
    receive_time_ms; other columns pass through. `carried`: the sequence rules' state per sensor
    from earlier batches (CARRIED_SCHEMA, e.g. silver.rule_state), or None for none; the state
    after this batch is `carried_state(checked)`. `now_ms` is the processing time the event-time
    rules compare with. Uses window functions: call it on a batch DataFrame (inside
    foreachBatch), not on a streaming one. `dq_failures` lists every failed rule (any action),
    empty when all passed.
    """
    sequenced = any(r.params.looks_back for r in rules)
    checked = _with_sequences(rows, rules, carried=carried, now_ms=now_ms) if sequenced else rows
    failures = [_failure(r, now_ms=now_ms) for r in rules]
    # The extra null keeps the array's type when there are no rules.
    everything = F.array(F.lit(None).cast(DQ_FAILURE_TYPE), *failures)
    carry = F.col(CARRY) if sequenced else F.lit(None).cast(_CARRY_TYPE)
    # One projection (not withColumn + drop): each step re-analyses the whole plan.
    return checked.select(
        *rows.columns,
        F.filter(everything, lambda f: f.isNotNull()).alias("dq_failures"),
        carry.alias(CARRY),
    )


def carried_state(checked: DataFrame) -> DataFrame:
    """The sequence rules' state per sensor after a checked batch (CARRIED_SCHEMA): the carried
    state as of each sensor's newest in-order row. Grain in: one checked reading; out: one sensor.
    """
    newest = F.max_by(F.col(CARRY), F.col(CARRY)["last_time"]).alias("carry")
    return (
        checked.where(F.col(CARRY).isNotNull())
        .groupBy("asset", "sensor")
        .agg(newest)
        .select("asset", "sensor", "carry.*")
    )


def failed_rule(rule_name: str) -> Column:
    """Whether a checked row failed the rule."""
    return F.exists("dq_failures", lambda f: f["rule"] == rule_name)


def has_action(*actions: str) -> Column:
    """Whether a checked row failed a rule with one of `actions`."""
    return F.exists("dq_failures", lambda f: f["action"].isin(*actions))


def rule_metrics(checked: DataFrame, rules: Sequence[Rule], *, batch_id: int) -> DataFrame:
    """One row per rule (METRICS_SCHEMA): rows in its scope (`checked`), passed and failed.

    Grain in: one checked reading (output of `apply_rules`); out: one rule. One aggregation.
    """
    if not rules:
        return checked.sparkSession.createDataFrame([], METRICS_SCHEMA)
    counts = checked.agg(*(
        agg
        for i, rule in enumerate(rules)
        for agg in (
            F.count_if(rule_scope(rule)).alias(f"checked_{i}"),
            F.count_if(failed_rule(rule.name)).alias(f"failed_{i}"),
        )
    ))  # fmt: skip
    per_rule = [
        F.struct(
            F.lit(batch_id).cast("long").alias("batch_id"),
            F.lit(rule.name).alias("rule"),
            F.lit(rule.kind).alias("kind"),
            F.lit(rule.action).alias("action"),
            F.col(f"checked_{i}").alias("checked"),
            (F.col(f"checked_{i}") - F.col(f"failed_{i}")).alias("passed"),
            F.col(f"failed_{i}").alias("failed"),
        )
        for i, rule in enumerate(rules)
    ]
    return counts.select(F.explode(F.array(*per_rule)).alias("m")).select("m.*")


def split_by_action(checked: DataFrame) -> Routed:
    """Route checked rows by their most severe failed action: fail > quarantine > drop > warn.

    - kept: no failure of action drop, quarantine or fail; `dq_failures` is replaced by
      `dq_warnings` (names of the failed warn rules, empty when none).
    - quarantined: a quarantine rule failed (or a fail rule, should the job not have stopped);
      keeps `dq_failures`, every failed rule with its reason, for the reviewing planner.
    - dropped: the worst failure is a drop rule; keeps `dq_failures` (dq_metrics counts them).
    Grain in and out: one reading; each row lands in exactly one of the three.
    """
    kept = checked.where(~has_action(*BLOCKING_ACTIONS))
    warnings = F.transform(
        F.filter("dq_failures", lambda f: f["action"] == "warn"), lambda f: f["rule"]
    )
    return Routed(
        kept=kept.withColumn("dq_warnings", warnings).drop("dq_failures"),
        quarantined=checked.where(has_action("quarantine", "fail")),
        dropped=checked.where(has_action("drop") & ~has_action("quarantine", "fail")),
    )
