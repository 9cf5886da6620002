"""The snapshot suites built from the YAML rules: every rule is expressed or declared stream-only."""

from pathlib import Path

from plantlake.core.contracts import GOLD_TELEMETRY_1M, GOLD_TWIN_STATE, SILVER_TELEMETRY
from plantlake.core.expectation_spec import Condition, ExpectationSpec
from plantlake.pipelines.transforms.expectations import load_rules, parse_rules
from plantlake.pipelines.transforms.lake_expectations import gold_specs, lake_specs, suite_spec
from plantlake.pipelines.transforms.validation_report import (
    SKIPPED_MISSING,
    ExpectationOutcome,
    TableValidation,
    ValidationReport,
    format_report,
    outcome_from_result,
)

NOW_MS = 1_750_000_000_000


def _rules(*bodies):
    return parse_rules({"rules": list(bodies)}, source="test.yaml")


def test_every_shipped_rule_maps_to_an_expectation_or_an_explicit_stream_only_entry():
    rules = load_rules()
    specs = suite_spec(rules, now_ms=NOW_MS)
    by_rule = {}
    for spec in specs:
        by_rule.setdefault(spec.rule, []).append(spec)
    assert {r.name for r in rules} <= set(by_rule)
    for rule in rules:
        mapped = by_rule[rule.name]
        if rule.kind in ("rate_of_change", "stuck"):
            assert [s.stream_only for s in mapped] == [True]
            assert "not expressible as a snapshot expectation" in mapped[0].note
            assert "streaming job only" in mapped[0].note
        else:
            assert mapped and not any(s.stream_only for s in mapped)
    assert all(s.table == SILVER_TELEMETRY.name for s in specs)


def test_a_range_rule_selects_its_quantity_unit_asset_classes_and_sensors():
    (rule,) = [r for r in load_rules() if r.name == "bearing_temperature_rotating"]
    between, not_null = suite_spec([rule], now_ms=NOW_MS)[:2]
    scope = (
        Condition("quantity", "==", "temperature"),
        Condition("unit", "==", "degC"),
        Condition("asset_class", "in", ("pump", "motor")),
        Condition("sensor", "in", ("bearing_temperature",)),
    )
    assert between.expectation == "ExpectColumnValuesToBeBetween"
    assert between.row_condition == scope
    assert between.kwargs == {"column": "value_without_nan", "max_value": 150.0, "mostly": 1.0}
    # NaN and null fail the range rule unless the quality is Bad, as in the silver job.
    assert not_null.expectation == "ExpectColumnValuesToNotBeNull"
    assert not_null.row_condition == (*scope, Condition("quality", "!=", "Bad"))
    assert dict(between.derived)["value_without_nan"].startswith("nanvl(value")


def test_a_range_rule_without_classes_or_sensors_checks_every_row_of_its_quantity_and_unit():
    (rule,) = _rules({
        "name": "flow", "kind": "range", "action": "drop", "description": "d",
        "quantity": "flow", "unit": "m3/h", "min": 0,
    })  # fmt: skip
    between = suite_spec([rule], now_ms=NOW_MS)[0]
    assert between.row_condition == (
        Condition("quantity", "==", "flow"),
        Condition("unit", "==", "m3/h"),
    )
    assert between.kwargs == {"column": "value_without_nan", "min_value": 0.0, "mostly": 1.0}


def test_warn_rules_tolerate_some_failing_rows_and_blocking_rules_none():
    specs = {s.rule: s for s in suite_spec(load_rules(), now_ms=NOW_MS)}
    assert specs["quality_good"].expectation == "ExpectColumnValuesToBeInSet"
    assert specs["quality_good"].kwargs["value_set"] == ["Good"]
    assert 0 < specs["quality_good"].kwargs["mostly"] < 1
    assert specs["known_asset"].kwargs == {"column": "asset_class", "mostly": 1.0}


def test_event_time_bounds_become_limits_on_event_time_and_receive_lag():
    (future, drift, stale) = _rules(
        {"name": "f", "kind": "event_time", "action": "quarantine", "description": "d",
         "max_future_seconds": 300},
        {"name": "a", "kind": "event_time", "action": "warn", "description": "d",
         "max_ahead_of_receive_seconds": 5},
        {"name": "s", "kind": "event_time", "action": "drop", "description": "d",
         "max_delay_seconds": 86400},
    )  # fmt: skip
    f = suite_spec([future], now_ms=NOW_MS)
    assert [s.expectation for s in f[:2]] == [
        "ExpectColumnValuesToNotBeNull",
        "ExpectColumnValuesToBeBetween",
    ]
    assert f[1].kwargs == {"column": "event_time_ms", "max_value": NOW_MS + 300_000, "mostly": 1.0}
    (_, lag, _) = suite_spec([drift], now_ms=NOW_MS)
    # receive_lag_ms is negative when the device clock is ahead of the edge's.
    assert lag.kwargs["column"] == "receive_lag_ms" and lag.kwargs["min_value"] == -5000
    assert "max_value" not in lag.kwargs
    (_, lag, _) = suite_spec([stale], now_ms=NOW_MS)
    assert lag.kwargs["max_value"] == 86_400_000 and "min_value" not in lag.kwargs


def test_gold_suites_check_twin_status_uniqueness_and_aggregate_consistency():
    gold = gold_specs()
    twin = {s.rule: s for s in gold[GOLD_TWIN_STATE.name]}
    assert set(twin["status_valid"].kwargs["value_set"]) == {"alive", "stale", "dead"}
    assert twin["key_unique"].kwargs["column_list"] == ["asset", "sensor"]
    assert {"asset_not_null", "sensor_not_null"} <= set(twin)
    agg = {s.rule: s for s in gold[GOLD_TELEMETRY_1M.name]}
    assert agg["count_positive"].kwargs == {"column": "count", "min_value": 1}
    assert agg["mean_not_below_min"].derived == (("mean_minus_min", "`mean` - `min`"),)
    assert agg["std_not_negative"].kwargs["min_value"] == 0
    assert set(lake_specs(load_rules(), now_ms=NOW_MS)) >= {SILVER_TELEMETRY, GOLD_TWIN_STATE}


def test_columns_lists_what_an_expectation_reads():
    spec = ExpectationSpec(
        "t", "r", "ExpectColumnValuesToBeBetween", {"column": "v", "min_value": 0},
        row_condition=(Condition("quantity", "==", "flow"),),
    )  # fmt: skip
    assert spec.columns() == {"v", "quantity"}
    unique = ExpectationSpec("t", "k", "ExpectCompoundColumnsToBeUnique", {"column_list": ["a"]})
    assert unique.columns() == {"a"}


def test_an_expectation_that_raised_reports_the_error_not_a_pass():
    spec = gold_specs()[GOLD_TWIN_STATE.name][0]
    outcome = outcome_from_result(
        spec,
        {"success": False, "result": {}, "exception_info": {
            "raised_exception": True, "exception_message": "column 'asset' not found"}},
    )  # fmt: skip
    assert outcome.success is False and "column 'asset' not found" in outcome.detail


def test_the_console_summary_counts_per_table_and_names_each_failure():
    report = ValidationReport(
        (
            TableValidation(
                SILVER_TELEMETRY.name, "failed", version=7,
                outcomes=(
                    ExpectationOutcome("pressure_plausible", "ExpectColumnValuesToBeBetween",
                                       False, 1, 3, "e.g. 600.0"),
                    ExpectationOutcome("known_asset", "ExpectColumnValuesToNotBeNull", True, 0, 3),
                    ExpectationOutcome("sensor_stuck", "stream-only", None),
                ),
            ),
            TableValidation(GOLD_TELEMETRY_1M.name, "skipped", SKIPPED_MISSING),
        ),
        Path("/lake/data-docs/index.html"),
    )  # fmt: skip
    lines = format_report(report).splitlines()
    assert lines[0].split() == ["table", "expectations", "passed", "failed"]
    assert lines[1].split() == ["silver.telemetry", "2", "1", "1", "version", "7"]
    assert lines[2].split()[:4] == ["gold.telemetry_1m", "-", "-", "-"]
    assert "FAILED silver.telemetry pressure_plausible" in lines[3] and "1 of 3 rows" in lines[3]
    assert "sensor_stuck" in lines[4]
    assert lines[-1] == "Data Docs: /lake/data-docs/index.html"
    assert not report.success
