"""Expectation rule files: the shipped YAML parses, and every kind of mistake is refused by code,
naming the file and the rule."""

import copy

import pytest
import yaml

from plantlake.core.errors import ConfigError
from plantlake.pipelines.transforms.expectations import (
    ACTIONS,
    EXPECTATIONS_DIR,
    KINDS,
    ExpectationConfigError,
    RangeParams,
    StuckParams,
    load_rules,
    parse_rule_files,
    parse_rules,
)

SOURCE = "expectations/test.yaml"
VALID = {
    "rules": [
        {
            "name": "temperature_plausible",
            "kind": "range",
            "action": "quarantine",
            "description": "Physical temperatures only.",
            "quantity": "temperature",
            "unit": "degC",
            "min": -40,
            "max": 250,
        },
        {
            "name": "sensor_stuck",
            "kind": "stuck",
            "action": "warn",
            "description": "Frozen sensors.",
            "quantities": ["current"],
            "min_minutes": 10,
            "min_readings": 5,
        },
    ]
}


def _with(index: int, **changes) -> dict:
    """VALID with rule `index` changed; a value of None removes the key."""
    doc = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            doc["rules"][index].pop(key)
        else:
            doc["rules"][index][key] = value
    return doc


def test_shipped_rules_parse_and_cover_every_kind():
    rules = load_rules()
    assert {r.kind for r in rules} == set(KINDS)
    assert all(r.action in ACTIONS and r.description for r in rules)
    assert len({r.name for r in rules}) == len(rules)
    assert all(r.source.startswith(str(EXPECTATIONS_DIR)) for r in rules)
    # The worked example of the spec: a 600 degC pump bearing breaks two limits.
    bearing = next(r for r in rules if r.name == "bearing_temperature_rotating")
    assert bearing.params == RangeParams(
        quantity="temperature", unit="degC", max=150.0,
        asset_classes=("pump", "motor"), sensors=("bearing_temperature",),
    )  # fmt: skip


def test_valid_mapping_parses_into_typed_params():
    range_rule, stuck = parse_rules(VALID, source=SOURCE)
    assert range_rule.params == RangeParams("temperature", "degC", min=-40.0, max=250.0)
    assert stuck.params == StuckParams(("current",), min_minutes=10.0, min_readings=5)
    assert stuck.action == "warn" and stuck.source == SOURCE


@pytest.mark.parametrize(
    ("doc", "code", "rule"),
    [
        (_with(0, kind="between"), "unknown-kind", "temperature_plausible"),
        (_with(0, action="expect_or_drop"), "unknown-action", "temperature_plausible"),
        (_with(0, quantity=None), "missing-param", "temperature_plausible"),
        (_with(0, min=None, max=None), "missing-param", "temperature_plausible"),
        (_with(1, min_readings=None), "missing-param", "sensor_stuck"),
        (_with(1, description=None), "missing-param", "sensor_stuck"),
        (_with(0, name=None), "missing-param", "#1"),
        (_with(0, maximum=250), "unknown-param", "temperature_plausible"),
        (_with(0, max="250"), "bad-type", "temperature_plausible"),
        (_with(0, max=True), "bad-type", "temperature_plausible"),
        (_with(1, quantities="current"), "bad-type", "sensor_stuck"),
        (_with(1, min_readings=5.5), "bad-type", "sensor_stuck"),
        (_with(0, min=300), "bad-value", "temperature_plausible"),
        (_with(0, unit="psi"), "bad-value", "temperature_plausible"),
        (_with(1, min_readings=1), "bad-value", "sensor_stuck"),
        (_with(0, name="Temperature Plausible"), "bad-value", "Temperature Plausible"),
        (_with(1, name="temperature_plausible"), "duplicate-rule", "temperature_plausible"),
    ],
)
def test_mistakes_are_refused_with_a_code_naming_file_and_rule(doc, code, rule):
    with pytest.raises(ExpectationConfigError) as caught:
        parse_rules(doc, source=SOURCE)
    assert caught.value.code == code
    assert caught.value.source == SOURCE and caught.value.rule == rule
    assert SOURCE in str(caught.value) and rule in str(caught.value)
    assert isinstance(caught.value, ConfigError)  # the CLI prints it as a config error


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "event_time"},  # needs at least one bound
        {"kind": "quality", "accepted": ["Fine"]},
        {"kind": "rate_of_change", "quantity": "temperature", "unit": "degC", "max_per_second": 0},
    ],
)
def test_kind_specific_values_are_checked(params):
    doc = {"rules": [{"name": "r", "action": "warn", "description": "d", **params}]}
    with pytest.raises(ExpectationConfigError) as caught:
        parse_rules(doc, source=SOURCE)
    assert caught.value.code in ("missing-param", "bad-value")
    assert caught.value.rule == "r"


@pytest.mark.parametrize("doc", [None, [], {"rule": []}, {"rules": [], "version": 1}])
def test_a_file_without_a_rules_list_is_refused(doc):
    with pytest.raises(ExpectationConfigError) as caught:
        parse_rules(doc, source=SOURCE)
    assert caught.value.code == "bad-file" and SOURCE in str(caught.value)


def test_rule_names_are_unique_across_files():
    with pytest.raises(ExpectationConfigError) as caught:
        parse_rule_files({"a.yaml": VALID, "b.yaml": _with(1, name="other")})
    assert caught.value.code == "duplicate-rule"
    assert caught.value.source == "b.yaml" and "a.yaml" in str(caught.value)


def test_load_rules_reads_every_yaml_file_and_names_a_broken_one(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(VALID))
    (tmp_path / "notes.txt").write_text("not a rule file")
    assert [r.name for r in load_rules(tmp_path)] == ["temperature_plausible", "sensor_stuck"]
    (tmp_path / "b.yaml").write_text("rules: [unclosed")
    with pytest.raises(ExpectationConfigError) as caught:
        load_rules(tmp_path)
    assert caught.value.code == "bad-file" and "b.yaml" in caught.value.source
    with pytest.raises(ExpectationConfigError, match="no \\*.yaml"):
        load_rules(tmp_path / "missing")
