"""Which snapshot expectations each lake table has: silver.telemetry's from the YAML rules (each
rule kind says how it is expressed, or that it is stream-only) plus its key, and the gold
tables' keys, statuses and window consistency. Pure data: `plantlake.pipelines.jobs.validate`
runs them through Great Expectations.

What a snapshot can and cannot check: silver.telemetry holds the rows that passed the silver
job's rules, so a rule whose action keeps failing rows out of it (quarantine, drop, fail) must
hold on every row, and a `warn` rule on most of them (its failing rows land, flagged in
`dq_warnings`). The sequence rules (rate_of_change, stuck) compare a reading with the readings
of the same sensor before it in event-time order; no column expectation says that, so they are
listed as stream-only (checked by the silver streaming job) rather than approximated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from plantlake.core.contracts import (
    GOLD_TELEMETRY_1M,
    GOLD_TELEMETRY_5M,
    GOLD_TWIN_STATE,
    SILVER_TELEMETRY,
    TWIN_STATUSES,
    TableRef,
)
from plantlake.core.expectation_spec import ExpectationSpec
from plantlake.pipelines.transforms.expectations import Rule

# mean is a sum of sorted values divided by n: for n equal values it can land one rounding step
# below their min (3 x 0.7 sums to 2.0999999999999996). 1e-6 in canonical units is far below any
# sensor's resolution and far above the rounding of a few thousand values.
MEAN_TOLERANCE = 1e-6
# Derived columns of the gold window checks (the rules' own are in core.expectation_spec).
MEAN_MINUS_MIN = ("mean_minus_min", "`mean` - `min`")
MAX_MINUS_MEAN = ("max_minus_mean", "`max` - `mean`")


def suite_spec(rules: Sequence[Rule], *, now_ms: int) -> list[ExpectationSpec]:
    """silver.telemetry's expectations: each rule as the expectation(s) that express it on a
    snapshot, or one stream-only entry; plus the uniqueness of silver's key.

    `now_ms` is the clock that event_time rules' future bound is measured from.
    """
    table = SILVER_TELEMETRY.name
    specs: list[ExpectationSpec] = []
    for rule in rules:
        specs += [
            spec
            if spec.note
            else replace(spec, note=f"{rule.name} ({rule.action}): {rule.description}")
            for spec in rule.params.expectation_specs(rule.name, rule.action, table, now_ms=now_ms)
        ]
    # Not a YAML rule: silver's dedup promises one row per key.
    specs.append(
        ExpectationSpec(
            table, "key_unique", "ExpectCompoundColumnsToBeUnique",
            {"column_list": list(SILVER_TELEMETRY.key)},
            note="key_unique: silver deduplicates readings on its key",
        )
    )  # fmt: skip
    return specs


def _not_null(table: str, columns: Iterable[str]) -> list[ExpectationSpec]:
    return [
        ExpectationSpec(table, f"{c}_not_null", "ExpectColumnValuesToNotBeNull", {"column": c})
        for c in columns
    ]


def gold_specs() -> dict[str, list[ExpectationSpec]]:
    """The gold tables' expectations by table name: keys present and unique, twin statuses
    known, window aggregates consistent (count > 0, min <= mean <= max, std >= 0)."""
    twin = GOLD_TWIN_STATE.name
    suites = {
        twin: [
            *_not_null(twin, (*GOLD_TWIN_STATE.key, "status")),
            ExpectationSpec(
                twin, "status_valid", "ExpectColumnValuesToBeInSet",
                {"column": "status", "value_set": list(TWIN_STATUSES)},
            ),
            ExpectationSpec(
                twin, "key_unique", "ExpectCompoundColumnsToBeUnique",
                {"column_list": list(GOLD_TWIN_STATE.key)},
            ),
        ]
    }  # fmt: skip
    for ref in (GOLD_TELEMETRY_1M, GOLD_TELEMETRY_5M):
        t = ref.name
        suites[t] = [
            *_not_null(t, ref.key),
            ExpectationSpec(
                t, "key_unique", "ExpectCompoundColumnsToBeUnique", {"column_list": list(ref.key)}
            ),
            ExpectationSpec(
                t, "count_positive", "ExpectColumnValuesToBeBetween",
                {"column": "count", "min_value": 1},
            ),
            ExpectationSpec(
                t, "mean_not_below_min", "ExpectColumnValuesToBeBetween",
                {"column": MEAN_MINUS_MIN[0], "min_value": -MEAN_TOLERANCE},
                derived=(MEAN_MINUS_MIN,),
            ),
            ExpectationSpec(
                t, "mean_not_above_max", "ExpectColumnValuesToBeBetween",
                {"column": MAX_MINUS_MEAN[0], "min_value": -MEAN_TOLERANCE},
                derived=(MAX_MINUS_MEAN,),
            ),
            # std is null for a window of one value; GE leaves nulls out of a between check.
            ExpectationSpec(
                t, "std_not_negative", "ExpectColumnValuesToBeBetween",
                {"column": "std", "min_value": 0},
            ),
        ]  # fmt: skip
    return suites


def lake_specs(rules: Sequence[Rule], *, now_ms: int) -> dict[TableRef, list[ExpectationSpec]]:
    """Every validated table with its expectations, silver first."""
    gold = gold_specs()
    return {
        SILVER_TELEMETRY: suite_spec(rules, now_ms=now_ms),
        **{ref: gold[ref.name] for ref in (GOLD_TWIN_STATE, GOLD_TELEMETRY_1M, GOLD_TELEMETRY_5M)},
    }
