"""Expectations evaluated in Spark: every rule kind passing and failing, routing by action,
per-rule metrics, the fail action's error, and rules that look back across the batch boundary."""

import pytest

from plantlake.core.errors import ExpectationFailed
from plantlake.pipelines.jobs.fail_rules import raise_on_fail_rules
from plantlake.pipelines.transforms.expectations import load_rules, parse_rules
from plantlake.pipelines.transforms.rule_evaluation import (
    apply_rules,
    carried_state,
    rule_metrics,
    split_by_action,
)

pytestmark = pytest.mark.spark

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NOW = T0 + 3_600_000
MIN = 60_000
ROWS = (
    "id string, asset string, sensor string, asset_class string, quantity string, value double, "
    "unit string, quality string, event_time_ms long, receive_time_ms long"
)
ROWS_COLUMNS = [c.split()[0] for c in ROWS.split(", ")]
CURRENT = {"sensor": "motor_current", "quantity": "current", "unit": "A"}


def _rule(name, kind, action="quarantine", **params):
    return {"name": name, "kind": kind, "action": action, "description": name, **params}


RULES = parse_rules(
    {
        "rules": [
            _rule("temperature_plausible", "range", quantity="temperature", unit="degC",
                  min=-40, max=250),
            _rule("bearing_rotating", "range", quantity="temperature", unit="degC",
                  asset_classes=["pump", "motor"], sensors=["bearing_temperature"], max=150),
            _rule("event_time_sane", "event_time", max_future_seconds=300,
                  max_ahead_of_receive_seconds=5, max_delay_seconds=86400),
            _rule("known_asset", "known_asset"),
            _rule("quality_good", "quality", action="warn"),
            _rule("temperature_rate", "rate_of_change", quantity="temperature", unit="degC",
                  max_per_second=10),
            _rule("sensor_stuck", "stuck", quantities=["current"], min_minutes=10,
                  min_readings=5, allowed_constant_values=[0]),
        ]
    },
    source="test",
)  # fmt: skip


def _row(
    id, *, asset="s/l/pump-01", sensor="bearing_temperature", asset_class="pump",
    quantity="temperature", value=55.0, unit="degC", quality="Good", t=T0, received=None,
):  # fmt: skip
    """One reading as a tuple in ROWS order; received 50 ms after the event unless given."""
    received = t + 50 if received is None else received
    return (id, asset, sensor, asset_class, quantity, value, unit, quality, t, received)


def _failures(checked) -> dict[str, dict[str, str]]:
    """id -> {failed rule: reason}."""
    return {r.id: {f.rule: f.reason for f in r.dq_failures} for r in checked.collect()}


def test_every_rule_kind_passes_and_fails(spark):
    current = {"sensor": "motor_current", "quantity": "current", "unit": "A"}
    rows = [
        _row("ok"),
        _row("spike", value=600.0),
        _row("hot_bearing", value=200.0),
        _row("hot_press", asset="s/l/press-01", asset_class="press", value=200.0),
        _row("nan_bad", asset="s/l/pump-02", value=float("nan"), quality="Bad"),
        _row("none_good", asset="s/l/pump-03", value=None),
        _row("unknown_asset", asset="s/l/pump-99", asset_class=None, value=600.0),
        _row("future", asset="s/l/pump-04", t=NOW + 10 * MIN, received=NOW),
        _row("drift", asset="s/l/pump-05", t=T0 + 12_000, received=T0),
        _row("late", asset="s/l/pump-06", received=T0 + 48 * 3_600_000),
        _row("unknown_quantity", sensor="humidity", quantity="humidity", unit="%", value=1e9),
        _row("unconverted", asset="s/l/pump-07", unit=None, value=999.0),
        # rate of change: 30 degC in one second; a spike is skipped as a predecessor
        _row("rate_first", asset="s/l/motor-01", asset_class="motor", value=50.0),
        _row("rate_jump", asset="s/l/motor-01", asset_class="motor", value=80.0, t=T0 + 1000),
        _row("rate_spike", asset="s/l/motor-02", asset_class="motor", value=600.0),
        _row("rate_before", asset="s/l/motor-02", asset_class="motor", value=50.0, t=T0 - 1000),
        _row("rate_after", asset="s/l/motor-02", asset_class="motor", value=51.0, t=T0 + 1000),
        # stuck: 42.0 A every 2 minutes; 0 A (a stopped machine) may stay constant
        *(
            _row(f"stuck_{m}", asset="s/l/pump-08", value=42.0, t=T0 + m * MIN, **current)
            for m in (0, 2, 4, 6, 8, 10)
        ),  # fmt: skip
        *(
            _row(f"stopped_{m}", asset="s/l/pump-09", value=0.0, t=T0 + m * MIN, **current)
            for m in (0, 2, 4, 6, 8, 10)
        ),  # fmt: skip
    ]
    checked = apply_rules(spark.createDataFrame(rows, ROWS), RULES, carried=None, now_ms=NOW)
    assert checked.columns == [*ROWS_COLUMNS, "dq_failures", "dq_carry"]
    failures = _failures(checked)

    assert failures["ok"] == {}
    assert failures["spike"] == {
        "temperature_plausible": "bearing_temperature 600.0 degC above the plausible maximum "
        "250 degC for a pump",
        "bearing_rotating": "bearing_temperature 600.0 degC above the plausible maximum "
        "150 degC for a pump",
    }
    assert set(failures["hot_bearing"]) == {"bearing_rotating"}
    assert failures["hot_press"] == {}
    assert failures["nan_bad"] == {"quality_good": "bearing_temperature reported quality Bad"}
    # Every range rule of the reading says so; a NaN with Bad quality is the quality rule's.
    assert failures["none_good"] == {
        "temperature_plausible": "bearing_temperature has no value but quality Good",
        "bearing_rotating": "bearing_temperature has no value but quality Good",
    }
    assert failures["unknown_asset"]["known_asset"] == (
        "s/l/pump-99 (sensor bearing_temperature) is not in the asset registry at the "
        "reading's event time"
    )
    assert set(failures["unknown_asset"]) == {"known_asset", "temperature_plausible"}
    assert failures["future"]["event_time_sane"].startswith(
        "event time 600.0 s ahead of the silver job's clock (tolerance 300 s)"
    )
    assert failures["drift"]["event_time_sane"].startswith(
        "device clock 12.0 s ahead of the edge's receive time (tolerance 5 s)"
    )
    assert failures["late"]["event_time_sane"].startswith(
        "received 48.0 h after its event time (bound 24 h)"
    )
    assert failures["unknown_quantity"] == {} and failures["unconverted"] == {}
    assert failures["rate_first"] == {}
    assert failures["rate_jump"] == {
        "temperature_rate": "bearing_temperature rose from 50.0 to 80.0 degC in 1.0 s "
        "(30.0 degC/s); the limit for temperature is 10 degC/s"
    }
    assert set(failures["rate_spike"]) == {"temperature_plausible", "bearing_rotating"}
    assert failures["rate_after"] == {}  # compared with 50.0, not with the spike
    assert [m for m in (0, 2, 4, 6, 8, 10) if failures[f"stuck_{m}"]] == [10]
    assert failures["stuck_10"]["sensor_stuck"] == (
        "motor_current stuck at 42.0 A for 10.0 min (6 readings without change); "
        "a working sensor varies"
    )
    assert not any(failures[f"stopped_{m}"] for m in (0, 2, 4, 6, 8, 10))


def test_rate_and_stuck_carry_state_across_the_batch_boundary(spark):
    rules_before = [
        _row("t1", asset="s/l/motor-01", asset_class="motor", value=50.0, t=T0 - 2000),
        _row("t2", asset="s/l/motor-01", asset_class="motor", value=50.5, t=T0 - 1000),
        *(_row(f"c{m}", asset="s/l/pump-08", value=42.0, t=T0 + m * MIN, **CURRENT)
          for m in (0, 2, 4, 6, 8)),
    ]  # fmt: skip
    earlier = apply_rules(
        spark.createDataFrame(rules_before, ROWS), RULES, carried=None, now_ms=NOW
    )
    carried = carried_state(earlier).persist()
    state = {(r.asset, r.sensor): r for r in carried.collect()}
    pump = state["s/l/pump-08", "motor_current"]
    assert (pump.last_time, pump.prev_raw, pump["count"]) == (T0 + 8 * MIN, 42.0, 5)
    assert tuple(pump.runs["sensor_stuck"]) == (T0, 1)
    assert state["s/l/motor-01", "bearing_temperature"].prev_value == 50.5

    rows = [
        _row("jump", asset="s/l/motor-01", asset_class="motor", value=80.0, t=T0),
        _row("steady", asset="s/l/motor-01", asset_class="motor", value=80.5, t=T0 + 1000),
        _row("stuck_10", asset="s/l/pump-08", value=42.0, t=T0 + 10 * MIN, **CURRENT),
        _row("stuck_12", asset="s/l/pump-08", value=42.0, t=T0 + 12 * MIN, **CURRENT),
        _row("moved", asset="s/l/pump-08", value=42.5, t=T0 + 14 * MIN, **CURRENT),
        # Older than the carried state: it cannot be placed in the sequence, so only the
        # row-local rules judge it, and it carries nothing forward.
        _row("old", asset="s/l/pump-08", value=42.0, t=T0 + 7 * MIN, **CURRENT),
    ]
    checked = apply_rules(spark.createDataFrame(rows, ROWS), RULES, carried=carried, now_ms=NOW)
    failures = _failures(checked)
    assert sorted(failures) == ["jump", "moved", "old", "steady", "stuck_10", "stuck_12"]
    assert failures["jump"]["temperature_rate"].startswith(
        "bearing_temperature rose from 50.5 to 80.0 degC in 1.0 s"
    )
    assert failures["steady"] == {}
    assert failures["stuck_10"]["sensor_stuck"].startswith(
        "motor_current stuck at 42.0 A for 10.0 min (6 readings"
    )
    assert "for 12.0 min (7 readings" in failures["stuck_12"]["sensor_stuck"]
    assert failures["moved"] == {} and failures["old"] == {}
    after = {(r.asset, r.sensor): r for r in carried_state(checked).collect()}
    assert after["s/l/pump-08", "motor_current"].last_time == T0 + 14 * MIN
    assert after["s/l/pump-08", "motor_current"]["count"] == 8
    carried.unpersist()


ROUTING_RULES = parse_rules(
    {
        "rules": [
            _rule("temperature_plausible", "range", quantity="temperature", unit="degC", max=250),
            _rule("known_asset", "known_asset", action="drop"),
            _rule("quality_good", "quality", action="warn"),
            _rule("event_time_sane", "event_time", action="fail", max_future_seconds=300),
        ]
    },
    source="expectations/routing.yaml",
)  # fmt: skip


@pytest.fixture(scope="module")
def routed_input(spark):
    rows = [
        _row("ok"),
        _row("warned", quality="Uncertain"),
        _row("dropped", asset_class=None),
        _row("dropped_warned", asset_class=None, quality="Bad", value=None),
        _row("quarantined", value=600.0, quality="Uncertain"),
        _row("quarantined_over_drop", asset_class=None, value=600.0),
    ]
    return spark.createDataFrame(rows, ROWS)


def test_rows_are_routed_by_their_most_severe_action(spark, routed_input):
    checked = apply_rules(routed_input, ROUTING_RULES, carried=None, now_ms=NOW)
    kept, quarantined, dropped = split_by_action(checked)
    assert "dq_failures" not in kept.columns and kept.columns[-1] == "dq_warnings"
    rule_names = "transform(dq_failures, f -> f.rule) AS rules"
    routed = (
        kept.selectExpr("id", "'kept' AS route", "dq_warnings AS rules")
        .unionByName(quarantined.selectExpr("id", "'quarantined' AS route", rule_names))
        .unionByName(dropped.selectExpr("id", "'dropped' AS route", rule_names))
        .collect()
    )
    assert {r.id: (r.route, sorted(r.rules)) for r in routed} == {
        "ok": ("kept", []),
        "warned": ("kept", ["quality_good"]),
        "dropped": ("dropped", ["known_asset"]),
        "dropped_warned": ("dropped", ["known_asset", "quality_good"]),
        "quarantined": ("quarantined", ["quality_good", "temperature_plausible"]),
        "quarantined_over_drop": ("quarantined", ["known_asset", "temperature_plausible"]),
    }


def test_rule_metrics_count_checked_passed_failed_per_rule(spark, routed_input):
    extra = spark.createDataFrame(
        [_row("pressure", sensor="p", quantity="pressure", unit="bar", value=5.0)], ROWS
    )
    checked = apply_rules(routed_input.unionByName(extra), ROUTING_RULES, carried=None, now_ms=NOW)
    metrics = rule_metrics(checked, ROUTING_RULES, batch_id=7).collect()
    assert [tuple(m) for m in metrics] == [
        (7, "temperature_plausible", "range", "quarantine", 6, 4, 2),  # pressure is not checked
        (7, "known_asset", "known_asset", "drop", 7, 4, 3),
        (7, "quality_good", "quality", "warn", 7, 4, 3),
        (7, "event_time_sane", "event_time", "fail", 7, 7, 0),
    ]
    raise_on_fail_rules(checked, ROUTING_RULES, metrics=metrics, batch_id=7)  # nothing failed
    assert rule_metrics(checked, [], batch_id=7).count() == 0


def test_a_fail_rule_stops_the_job_naming_rule_count_and_example(spark):
    rows = [
        _row("ok"),
        _row("future_1", t=NOW + 10 * MIN, received=NOW),
        _row("future_2", asset="s/l/pump-02", t=NOW + 20 * MIN, received=NOW),
    ]
    checked = apply_rules(
        spark.createDataFrame(rows, ROWS), ROUTING_RULES, carried=None, now_ms=NOW
    )
    with pytest.raises(ExpectationFailed) as caught:
        raise_on_fail_rules(checked, ROUTING_RULES, batch_id=3)
    error = caught.value
    assert error.code == "expectation-failed"
    assert (error.rule, error.failed) == ("event_time_sane", 2)
    assert str(error).startswith(
        "silver.telemetry: expectation 'event_time_sane' (action fail) failed for 2 row(s) "
        "in batch 3, e.g. s/l/pump-0"
    )
    assert "s ahead of the silver job's clock" in error.example
    assert "expectations/routing.yaml" in str(error)  # where to change the action
    metrics = [{"rule": "event_time_sane", "failed": 2}]
    with pytest.raises(ExpectationFailed, match="failed for 2 row"):
        raise_on_fail_rules(checked, ROUTING_RULES, metrics=metrics, batch_id=3)


def test_shipped_rules_run_and_no_rules_mean_no_failures(spark, routed_input):
    shipped = apply_rules(routed_input, load_rules(), carried=None, now_ms=NOW)
    spike = shipped.where("id = 'quarantined'").first()
    assert {f.rule for f in spike.dq_failures} == {
        "temperature_plausible", "bearing_temperature_rotating", "quality_good",
    }  # fmt: skip
    unchecked = apply_rules(routed_input, [], carried=None, now_ms=NOW)
    assert {r.id: r.dq_failures for r in unchecked.collect()} == {
        r.id: [] for r in routed_input.collect()
    }
