"""Data-quality expectations of the silver layer as data: the YAML rule files and their parsing."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from importlib.resources import files
from pathlib import Path
from typing import Any, NoReturn

import yaml

from plantlake.core.errors import ConfigError
from plantlake.pipelines.transforms.rules import KINDS
from plantlake.pipelines.transforms.rules.base import Rule, RuleParams
from plantlake.pipelines.transforms.rules.event_time import EventTimeParams
from plantlake.pipelines.transforms.rules.known_asset import KnownAssetParams
from plantlake.pipelines.transforms.rules.quality import QualityParams
from plantlake.pipelines.transforms.rules.range import RangeParams
from plantlake.pipelines.transforms.rules.rate_of_change import RateOfChangeParams
from plantlake.pipelines.transforms.rules.stuck import StuckParams

# The kinds' params, importable from here as the rule files' vocabulary.
__all__ = [
    "ACTIONS", "BLOCKING_ACTIONS", "KINDS", "UNIT_RULE", "EventTimeParams",
    "ExpectationConfigError", "KnownAssetParams", "QualityParams", "RangeParams",
    "RateOfChangeParams", "Rule", "RuleParams", "StuckParams", "load_rules", "parse_rules",
]  # fmt: skip

# The rule files are package data of `plantlake.expectations` (the expectations/ folder).
EXPECTATIONS_DIR = Path(str(files("plantlake.expectations")))

# DLT's expect / expect_or_drop / expect_or_fail, plus quarantine: keep the row for review.
ACTIONS = ("warn", "drop", "quarantine", "fail")
# Actions that keep a row out of silver.telemetry, most severe first.
BLOCKING_ACTIONS = ("fail", "quarantine", "drop")
# The job's own check that a reading's unit could be normalized (action quarantine); it is not
# a rule file's rule, but dq_metrics and quarantine name it like one.
UNIT_RULE = "unit"
_COMMON_KEYS = ("name", "kind", "action", "description")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class ExpectationConfigError(ConfigError):
    """A rule file that cannot be used. `code` is stable; the message names the file and rule."""

    def __init__(self, code: str, message: str, *, source: str, rule: str | None = None):
        where = f"{source}: rule {rule!r}" if rule else source
        super().__init__(
            f"Expectations {where}: {message}",
            hint="Fix the rule file (see expectations/README.md for the rule kinds and params).",
        )
        self.code = code
        self.source = source
        self.rule = rule


_NUMBER_KEYS = {
    "min", "max", "max_per_second", "min_seconds", "epsilon", "min_minutes",
    "max_future_seconds", "max_ahead_of_receive_seconds", "max_delay_seconds",
}  # fmt: skip
_LIST_KEYS = {"asset_classes", "sensors", "quantities", "accepted"}
_STRING_KEYS = {"quantity", "unit"}


def _typed(key: str, value: Any, fail) -> Any:
    """A param value in its Python type; `fail(code, message)` raises."""
    if key in _NUMBER_KEYS:
        # YAML's `true` is an int to Python, and never a sensible limit.
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("bad-type", f"{key} must be a number, got {value!r}")
        return float(value)
    if key == "min_readings":
        if isinstance(value, bool) or not isinstance(value, int):
            fail("bad-type", f"min_readings must be a whole number, got {value!r}")
        return value
    if key == "allowed_constant_values":
        if isinstance(value, str) or not isinstance(value, Sequence):
            fail("bad-type", f"{key} must be a list of numbers, got {value!r}")
        return tuple(_typed("epsilon", v, fail) for v in value)
    if key in _LIST_KEYS:
        if isinstance(value, str) or not isinstance(value, Sequence):
            fail("bad-type", f"{key} must be a list of names, got {value!r}")
        if not all(isinstance(v, str) for v in value):
            fail("bad-type", f"{key} must contain only names (strings), got {list(value)!r}")
        return tuple(value)
    if key in _STRING_KEYS:
        # A state's canonical unit is "" (YAML ''), which is a valid unit.
        if not isinstance(value, str):
            fail("bad-type", f"{key} must be a string, got {value!r}")
        return value
    raise AssertionError(f"no type declared for param {key!r}")  # a bug in this module


def _parse_rule(body: Any, *, index: int, source: str) -> Rule:
    label = body.get("name") if isinstance(body, Mapping) else None
    rule_label = label if isinstance(label, str) and label else f"#{index + 1}"

    def fail(code: str, message: str) -> NoReturn:
        raise ExpectationConfigError(code, message, source=source, rule=rule_label)

    if not isinstance(body, Mapping):
        fail("bad-type", f"a rule must be a mapping of keys, got {body!r}")
    for key in _COMMON_KEYS:
        if key not in body:
            fail("missing-param", f"missing {key!r}")
        if not isinstance(body[key], str) or not body[key].strip():
            fail("bad-type", f"{key!r} must be a non-empty string, got {body[key]!r}")
    if not _NAME.fullmatch(body["name"]):
        fail("bad-value", "a rule name is lower_snake_case (it keys silver.dq_metrics)")
    kind, action = body["kind"], body["action"]
    if kind not in KINDS:
        fail("unknown-kind", f"kind {kind!r} is not one of {list(KINDS)}")
    if action not in ACTIONS:
        fail("unknown-action", f"action {action!r} is not one of {list(ACTIONS)}")
    params_type = KINDS[kind]
    required = params_type.required
    allowed = {f.name for f in fields(params_type)}
    given = {k: v for k, v in body.items() if k not in _COMMON_KEYS}
    if unknown := set(given) - allowed:
        fail("unknown-param", f"unknown params {sorted(unknown)} for kind {kind}; "
                              f"known: {sorted(allowed)}")  # fmt: skip
    if missing := [k for k in required if k not in given]:
        fail("missing-param", f"kind {kind} needs {missing}")
    params = params_type(**{k: _typed(k, v, fail) for k, v in given.items()})
    params.check_values(fail)
    return Rule(body["name"], kind, action, body["description"].strip(), params, source=source)


def parse_rules(mapping: Any, *, source: str) -> tuple[Rule, ...]:
    """Unpack one rule file's content (as read from YAML) into rules, in file order.

    Raises ExpectationConfigError naming `source` and the rule.
    """
    if not isinstance(mapping, Mapping) or not isinstance(mapping.get("rules"), list):
        raise ExpectationConfigError(
            "bad-file", "needs a top-level 'rules' list of rules", source=source
        )
    if unknown := set(mapping) - {"rules"}:
        raise ExpectationConfigError(
            "bad-file", f"unknown top-level keys {sorted(unknown)}", source=source
        )
    rules = [_parse_rule(body, index=i, source=source) for i, body in enumerate(mapping["rules"])]
    return _without_duplicates(rules)


def _without_duplicates(rules: Sequence[Rule]) -> tuple[Rule, ...]:
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in seen:
            raise ExpectationConfigError(
                "duplicate-rule",
                f"the name is already used by a rule in {seen[rule.name].source}; "
                "rule names key silver.dq_metrics, so each must be unique",
                source=rule.source,
                rule=rule.name,
            )
        seen[rule.name] = rule
    return tuple(rules)


def parse_rule_files(documents: Mapping[str, Any]) -> tuple[Rule, ...]:
    """Rules of several files (source -> content), names unique across all of them."""
    rules = [rule for source, doc in documents.items() for rule in parse_rules(doc, source=source)]
    return _without_duplicates(rules)


def read_rule_files(directory: Path = EXPECTATIONS_DIR) -> dict[str, Any]:
    """The content of every `*.yaml` file in `directory`, by path, in name order."""
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise ExpectationConfigError("bad-file", "no *.yaml rule files", source=str(directory))
    documents = {}
    for path in paths:
        try:
            documents[str(path)] = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ExpectationConfigError("bad-file", str(exc), source=str(path)) from exc
    return documents


def load_rules(directory: Path = EXPECTATIONS_DIR) -> tuple[Rule, ...]:
    """Every rule declared in `directory`; raises ExpectationConfigError on any bad rule."""
    return parse_rule_files(read_rule_files(directory))
