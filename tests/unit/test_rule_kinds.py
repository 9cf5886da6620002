"""Each rule kind is one module that owns its params and checks (issue 9), and the row-wise
evaluator's carried state survives a change of rule set."""

import json
from dataclasses import fields

import pytest

from plantlake.pipelines.transforms.expectations import (
    KINDS,
    ExpectationConfigError,
    Rule,
    parse_rules,
)
from plantlake.pipelines.transforms.reading_checks import ReadingChecker
from plantlake.pipelines.transforms.rules.base import Prepared, RuleParams, SensorChecks
from plantlake.pipelines.transforms.rules.stuck import StuckParams

MINUTE_MS = 60_000


def _reading(value: float, t: int) -> Prepared:
    return Prepared(
        asset="s/l/pump", sensor="current", asset_class="pump", quantity="current", value=value,
        unit="A", quality="Good", event_time_ms=t, receive_time_ms=t, unit_error=False,
    )  # fmt: skip


def test_every_kind_names_itself_and_its_required_params():
    for kind, params in KINDS.items():
        assert issubclass(params, RuleParams) and params.kind == kind
        assert set(params.required) <= {f.name for f in fields(params)}


def test_a_kind_checks_its_own_values_when_a_file_is_parsed():
    body = {"name": "stuck_current", "kind": "stuck", "action": "warn", "description": "d",
            "quantities": ["current"], "min_minutes": 5, "min_readings": 1}  # fmt: skip
    with pytest.raises(ExpectationConfigError) as error:
        parse_rules({"rules": [body]}, source="test.yaml")
    assert error.value.code == "bad-value" and "min_readings at least 2" in str(error.value)


def test_a_sequence_kind_is_stream_only_in_a_snapshot():
    params = StuckParams(quantities=("current",), min_minutes=5, min_readings=3)
    (spec,) = params.expectation_specs("stuck_current", "warn", "silver.telemetry", now_ms=0)
    assert spec.stream_only and "the run of readings of the same sensor" in spec.note


def test_a_stuck_rule_new_to_a_sensors_carried_state_fails_after_its_own_run():
    """The hot path's carried checks came from a rule set without this stuck rule (renamed or
    added): its first unchanged reading has no run yet. That must not be stored as a null run,
    which could not be written back as JSON; the rule's run starts at the next change."""
    rule = Rule("stuck_current_v2", "stuck", "warn", "d",
                StuckParams(quantities=("current",), min_minutes=5, min_readings=3))  # fmt: skip
    checker = ReadingChecker([rule])
    checks = SensorChecks(last_time=0, prev_value=7.0, prev_time=0, prev_raw=7.0, count=10)
    assert checker.failed_rules(_reading(7.0, MINUTE_MS), checks, now_ms=MINUTE_MS) == []
    assert None not in checks.runs.values()
    json.dumps(checks.to_json())  # what the hot path stores between runs
    failed = []
    for minute, value in enumerate([8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0], start=2):
        failed = checker.failed_rules(_reading(value, minute * MINUTE_MS), checks,
                                      now_ms=minute * MINUTE_MS)  # fmt: skip
    assert failed == ["stuck_current_v2"]
    assert checks.runs["stuck_current_v2"] == (2 * MINUTE_MS, 12)
