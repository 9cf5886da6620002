"""Evaluation of the data-quality expectations on silver rows in Spark, and routing by action."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F

from plantlake.core.errors import ExpectationFailed
from plantlake.pipelines.transforms.expectations import (
    BLOCKING_ACTIONS,
    EventTimeParams,
    KnownAssetParams,
    QualityParams,
    RangeParams,
    RateOfChangeParams,
    Rule,
    StuckParams,
)

DQ_FAILURE_TYPE = "struct<rule:string,action:string,reason:string>"
DQ_FAILURES_TYPE = f"array<{DQ_FAILURE_TYPE}>"
METRICS_SCHEMA = (
    "batch_id long, rule string, kind string, action string, checked long, passed long, failed long"
)
_TMP = "_dq_"  # prefix of the working columns apply_rules adds and removes


class Routed(NamedTuple):
    """Checked rows by destination (see `split_by_action`)."""

    kept: DataFrame
    quarantined: DataFrame
    dropped: DataFrame


def _g(x: float) -> str:
    """A limit as a person writes it: 250, 0.5, -40."""
    return f"{x:g}"


def _num(col: Column) -> Column:
    """A measured number, rounded for reading (a reason is for people; the row has the value)."""
    return F.round(col, 3)


def _value() -> Column:
    """The canonical value with NaN as null: Spark orders NaN above every number, so a NaN
    compared with a maximum would otherwise read as "too high"."""
    return F.nanvl(F.col("value"), F.lit(None).cast("double"))


def _among(column: str, names: tuple[str, ...]) -> Column:
    return F.col(column).isin(*names) if names else F.lit(True)


def rule_scope(rule: Rule) -> Column:
    """Whether a row is one the rule checks (false for unknown quantities, units, classes)."""
    p = rule.params
    if isinstance(p, RangeParams | RateOfChangeParams):
        scope = (
            (F.col("quantity") == p.quantity)
            & F.col("unit").eqNullSafe(p.unit)
            & _among("asset_class", p.asset_classes)
            & _among("sensor", p.sensors)
        )
    elif isinstance(p, StuckParams):
        scope = F.col("quantity").isin(*p.quantities)
    else:
        scope = F.lit(True)
    return F.coalesce(scope, F.lit(False))


def _for_asset_class() -> Column:
    return F.when(
        F.col("asset_class").isNotNull(), F.concat(F.lit(" for a "), F.col("asset_class"))
    )


def _range_failure(p: RangeParams) -> tuple[Column, Column]:
    """(fails, reason) of a range rule, for rows in its scope."""
    v = _value()
    missing = v.isNull() & ~F.coalesce(F.col("quality") == "Bad", F.lit(False))
    high = v > p.max if p.max is not None else F.lit(False)
    low = v < p.min if p.min is not None else F.lit(False)

    def beyond(word: str, limit: float | None) -> Column:
        bound = "maximum" if word == "above" else "minimum"
        return F.concat(
            F.format_string(
                f"%s %s {p.unit} {word} the plausible {bound} {_g(limit or 0.0)} {p.unit}",
                F.col("sensor"),
                _num(v),
            ),
            F.coalesce(_for_asset_class(), F.lit("")),
        )

    reason = (
        F.when(missing, F.format_string("%s has no value but quality %s", "sensor", "quality"))
        .when(high, beyond("above", p.max))
        .otherwise(beyond("below", p.min))
    )
    return missing | high | low, reason


def _event_time_failure(p: EventTimeParams, now_ms: int) -> tuple[Column, Column]:
    t, received = F.col("event_time_ms"), F.col("receive_time_ms")
    checks: list[tuple[Column, Column]] = [(t.isNull(), F.lit("event time is missing"))]
    if p.max_future_seconds is not None:
        ahead = t - F.lit(now_ms)
        checks.append((
            ahead > p.max_future_seconds * 1000,
            F.format_string(
                f"event time %s s ahead of the silver job's clock (tolerance "
                f"{_g(p.max_future_seconds)} s): check the device clock",
                _num(ahead / 1000),
            ),
        ))  # fmt: skip
    if p.max_ahead_of_receive_seconds is not None:
        ahead = t - received
        checks.append((
            ahead > p.max_ahead_of_receive_seconds * 1000,
            F.format_string(
                f"device clock %s s ahead of the edge's receive time (tolerance "
                f"{_g(p.max_ahead_of_receive_seconds)} s): check the device's time sync",
                _num(ahead / 1000),
            ),
        ))  # fmt: skip
    if p.max_delay_seconds is not None:
        late = received - t
        checks.append((
            late > p.max_delay_seconds * 1000,
            F.format_string(
                f"received %s h after its event time (bound {_g(p.max_delay_seconds / 3600)} h): "
                "check the device clock",
                _num(late / 3_600_000),
            ),
        ))  # fmt: skip
    fails = F.lit(False)
    reason = None
    for cond, text in checks:
        cond = F.coalesce(cond, F.lit(False))
        fails = fails | cond
        reason = F.when(cond, text) if reason is None else reason.when(cond, text)
    return fails, reason


def _rate_failure(p: RateOfChangeParams) -> tuple[Column, Column]:
    """Needs the working columns of `_with_sequences`."""
    v, prev = _value(), F.col(f"{_TMP}prev_value")
    dt_ms = F.col("event_time_ms") - F.col(f"{_TMP}prev_time")
    rate = F.abs(v - prev) / (F.greatest(dt_ms, F.lit(p.min_seconds * 1000)) / 1000)
    fails = (
        F.col(f"{_TMP}in_order")
        & F.col(f"{_TMP}usable")
        & prev.isNotNull()
        & (rate > p.max_per_second)
    )
    reason = F.format_string(
        f"%s %s from %s to %s {p.unit} in %s s (%s {p.unit}/s); the limit for {p.quantity} is "
        f"{_g(p.max_per_second)} {p.unit}/s",
        F.col("sensor"),
        F.when(v > prev, "rose").otherwise("fell"),
        _num(prev),
        _num(v),
        _num(dt_ms / 1000),
        _num(rate),
    )
    return F.coalesce(fails, F.lit(False)), reason


def _stuck_failure(p: StuckParams, index: int) -> tuple[Column, Column]:
    v = _value()
    since = F.col(f"{_TMP}run_start_{index}")
    readings = F.col(f"{_TMP}count") - F.col(f"{_TMP}run_first_{index}") + 1
    span_ms = F.col("event_time_ms") - since
    allowed = v.isin(*p.allowed_constant_values) if p.allowed_constant_values else F.lit(False)
    fails = (
        F.col(f"{_TMP}in_order")
        & v.isNotNull()
        & ~allowed
        & (readings >= p.min_readings)
        & (span_ms >= p.min_minutes * 60_000)
    )
    change = "without change" if p.epsilon == 0 else f"each within {_g(p.epsilon)} of the last"
    reason = F.format_string(
        f"%s stuck at %s %s for %s min (%s readings {change}); a working sensor varies",
        F.col("sensor"),
        _num(v),
        F.coalesce(F.col("unit"), F.lit("")),
        _num(span_ms / 60_000),
        readings,
    )
    return F.coalesce(fails, F.lit(False)), reason


def _failure(rule: Rule, *, now_ms: int, stuck_index: dict[str, int]) -> Column:
    """The rule's failure struct for a row, or null when the row passes or is out of scope."""
    p = rule.params
    if isinstance(p, RangeParams):
        fails, reason = _range_failure(p)
    elif isinstance(p, EventTimeParams):
        fails, reason = _event_time_failure(p, now_ms)
    elif isinstance(p, KnownAssetParams):
        fails = F.col("asset_class").isNull()
        reason = F.format_string(
            "%s (sensor %s) is not in the asset registry at the reading's event time",
            "asset",
            "sensor",
        )
    elif isinstance(p, QualityParams):
        fails = ~F.coalesce(F.col("quality").isin(*p.accepted), F.lit(False))
        reason = F.format_string(
            "%s reported quality %s", F.col("sensor"), F.coalesce(F.col("quality"), F.lit("none"))
        )
    elif isinstance(p, RateOfChangeParams):
        fails, reason = _rate_failure(p)
    elif isinstance(p, StuckParams):
        fails, reason = _stuck_failure(p, stuck_index[rule.name])
    else:  # parse_rules admits no other kind
        raise AssertionError(f"no evaluation for rule kind {rule.kind!r}")
    return F.when(
        rule_scope(rule) & fails,
        F.struct(
            F.lit(rule.name).alias("rule"),
            F.lit(rule.action).alias("action"),
            reason.alias("reason"),
        ),
    )


def _implausible(rules: Sequence[Rule]) -> Column:
    """Whether a row's value is outside a range rule it is in scope of (whatever the action)."""
    flags = [rule_scope(r) & _range_failure(r.params)[0] for r in rules if r.kind == "range"]
    flag = F.lit(False)
    for f in flags:
        flag = flag | F.coalesce(f, F.lit(False))
    return flag


# What the rate-of-change and stuck rules carry per sensor from one micro-batch to the next
# (silver.rule_state; the hot path's SensorChecks holds the same): the last event time seen, the
# last usable value and its time, the last non-null value, how many non-null values there were,
# and per stuck rule the (event time, count) of the reading that began the current unchanged run.
CARRIED_SCHEMA = (
    "asset string, sensor string, last_time long, prev_value double, prev_time long, "
    "prev_raw double, count long, runs map<string, struct<start:long, first:long>>"
)
_RUNS_TYPE = "map<string, struct<start:long, first:long>>"
_CARRY_TYPE = (
    "struct<last_time:long, prev_value:double, prev_time:long, prev_raw:double, count:long, "
    f"runs:{_RUNS_TYPE}>"
)
CARRY = "dq_carry"  # the column apply_rules adds: the carried state as of the row, or null


def _with_sequences(
    rows: DataFrame, rules: Sequence[Rule], *, carried: DataFrame | None
) -> DataFrame:
    """Rows plus, per row, what the rate-of-change and stuck rules need from the readings of the
    same sensor before it, ordered by event time: in the batch, or carried over from earlier
    batches (`carried`, CARRIED_SCHEMA), never re-read from silver.

    Grain in and out: one reading. Working columns (prefix `_dq_`): usable (a plausible value
    for comparing: not null/NaN, not Bad, inside its ranges), in_order (newer than everything
    carried), prev_value/prev_time (the last usable reading before), prev_raw (the last non-null
    value before), count (non-null readings so far), and per stuck rule run_start_i and
    run_first_i (event time and `count` of the reading that began the current run of unchanged
    values); plus CARRY, the carried state as of the row. A row no newer than the carried state
    cannot be placed in the sequence: the sequence rules pass it and it carries nothing.
    """
    t = F.col("event_time_ms")
    usable = (
        _value().isNotNull()
        & F.coalesce(F.col("quality") != "Bad", F.lit(True))
        & ~_implausible(rules)
    )
    stuck = [r for r in rules if isinstance(r.params, StuckParams)]
    types = {"last_time": "long", "prev_value": "double", "prev_time": "long",
             "prev_raw": "double", "count": "long", "runs": _RUNS_TYPE}  # fmt: skip
    c = {name: F.lit(None).cast(kind) for name, kind in types.items()}
    batch = rows.withColumn(f"{_TMP}usable", usable)
    if carried is not None:
        carry_in = carried.select(
            "asset", "sensor", *(F.col(k).alias(f"{_TMP}c_{k}") for k in c)
        )  # fmt: skip
        batch = batch.join(F.broadcast(carry_in), ["asset", "sensor"], "left")
        c = {k: F.col(f"{_TMP}c_{k}") for k in c}
    in_order = F.coalesce(t > c["last_time"], F.lit(True))
    batch = batch.withColumn(f"{_TMP}in_order", in_order)
    order = Window.partitionBy("asset", "sensor", f"{_TMP}in_order").orderBy(t, "value")
    before = order.rowsBetween(Window.unboundedPreceding, -1)
    upto = order.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    v, ok = _value(), F.col(f"{_TMP}usable")
    count0 = F.coalesce(c["count"], F.lit(0)).cast("long")

    def last(col: Column, frame) -> Column:
        return F.last(col, ignorenulls=True).over(frame)

    seq = batch.withColumns({
        f"{_TMP}prev_value": F.coalesce(last(F.when(ok, v), before), c["prev_value"]),
        f"{_TMP}prev_time": F.coalesce(last(F.when(ok, t), before), c["prev_time"]),
        f"{_TMP}prev_raw": F.coalesce(last(v, before), c["prev_raw"]),
        f"{_TMP}count": count0 + F.count(v).over(upto),
    })  # fmt: skip
    runs = {}
    for i, rule in enumerate(stuck):
        name, p = rule.name, rule.params
        prev_raw, count = F.col(f"{_TMP}prev_raw"), F.col(f"{_TMP}count")
        # A run of unchanged values starts where a value moves more than epsilon from the one
        # before; null/NaN readings neither start nor end a run.
        starts = v.isNotNull() & (prev_raw.isNull() | (F.abs(v - prev_raw) > p.epsilon))
        runs[f"{_TMP}run_start_{i}"] = F.coalesce(last(F.when(starts, t), upto),
                                                 c["runs"][name]["start"])  # fmt: skip
        runs[f"{_TMP}run_first_{i}"] = F.coalesce(last(F.when(starts, count), upto),
                                                 c["runs"][name]["first"])  # fmt: skip
    if runs:
        seq = seq.withColumns(runs)
    carry = F.struct(
        t.alias("last_time"),
        F.coalesce(last(F.when(ok, v), upto), c["prev_value"]).alias("prev_value"),
        F.coalesce(last(F.when(ok, t), upto), c["prev_time"]).alias("prev_time"),
        F.coalesce(last(v, upto), c["prev_raw"]).alias("prev_raw"),
        F.col(f"{_TMP}count").alias("count"),
        (
            F.create_map(*(
                x for i, rule in enumerate(stuck)
                for x in (F.lit(rule.name), F.struct(F.col(f"{_TMP}run_start_{i}").alias("start"),
                                                F.col(f"{_TMP}run_first_{i}").alias("first")))
            )) if stuck else F.lit(None)
        ).cast(_RUNS_TYPE).alias("runs"),
    )  # fmt: skip
    return seq.withColumn(CARRY, F.when(F.col(f"{_TMP}in_order"), carry))


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
    sequenced = any(isinstance(r.params, RateOfChangeParams | StuckParams) for r in rules)
    checked = _with_sequences(rows, rules, carried=carried) if sequenced else rows
    stuck_index = {
        r.name: i for i, r in enumerate(r for r in rules if isinstance(r.params, StuckParams))
    }
    failures = [_failure(r, now_ms=now_ms, stuck_index=stuck_index) for r in rules]
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


def _failed(rule_name: str) -> Column:
    return F.exists("dq_failures", lambda f: f["rule"] == rule_name)


def _has_action(*actions: str) -> Column:
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
            F.count_if(_failed(rule.name)).alias(f"failed_{i}"),
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
    kept = checked.where(~_has_action(*BLOCKING_ACTIONS))
    warnings = F.transform(
        F.filter("dq_failures", lambda f: f["action"] == "warn"), lambda f: f["rule"]
    )
    return Routed(
        kept=kept.withColumn("dq_warnings", warnings).drop("dq_failures"),
        quarantined=checked.where(_has_action("quarantine", "fail")),
        dropped=checked.where(_has_action("drop") & ~_has_action("quarantine", "fail")),
    )


def raise_on_fail_rules(
    checked: DataFrame,
    rules: Sequence[Rule],
    *,
    metrics: Sequence[Row] | None = None,
    batch_id: int | None = None,
) -> None:
    """Raise ExpectationFailed if a row failed a rule whose action is `fail`.

    With `metrics` (the collected `rule_metrics` rows of this batch) it runs no Spark job unless
    a fail rule failed; then it fetches one example row for the message.
    """
    fail_rules = {r.name: r for r in rules if r.action == "fail"}
    if not fail_rules:
        return
    if metrics is not None:
        failed = {m["rule"]: m["failed"] for m in metrics if m["rule"] in fail_rules}
        if not any(failed.values()):
            return
        name = next(n for n in fail_rules if failed.get(n))
        count = failed[name]
    else:
        first = checked.where(_has_action("fail")).select("dq_failures").first()
        if first is None:
            return
        name = next(f["rule"] for f in first["dq_failures"] if f["action"] == "fail")
        count = checked.where(_failed(name)).count()
    row = (
        checked.where(_failed(name))
        .select(
            "asset",
            "sensor",
            "event_time_ms",
            F.filter("dq_failures", lambda f: f["rule"] == name)[0]["reason"].alias("reason"),
        )
        .first()
    )
    example = (
        f"{row['asset']} {row['sensor']} at event_time_ms {row['event_time_ms']}: {row['reason']}"
    )
    rule = fail_rules[name]
    in_batch = f" in batch {batch_id}" if batch_id is not None else ""
    raise ExpectationFailed(
        f"silver.telemetry: expectation {name!r} (action fail) failed for {count} row(s)"
        f"{in_batch}, e.g. {example}.",
        rule=name,
        failed=count,
        example=example,
        hint=(
            "The silver job stopped so that no such row lands. Fix the data at its source, or "
            f"change the rule's action in {rule.source or 'expectations/'} to quarantine or "
            "drop; then restart the job (the batch is retried)."
        ),
    )
