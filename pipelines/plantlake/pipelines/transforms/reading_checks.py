"""The expectation rules evaluated on one reading at a time, in plain Python (the hot path's evaluator).

Silver evaluates the same rules (expectations/*.yaml) in Spark over a micro-batch
(`plantlake.pipelines.transforms.rule_evaluation`); the hot path cannot wait for a batch, so it evaluates them here,
reading by reading, in the order a sensor's readings arrive. The row-local kinds (range,
event_time, known_asset, quality) need only the reading; rate_of_change and stuck need what
came before, which the caller carries per sensor in a `SensorChecks` (a few numbers, never a
re-read of history). tests/spark/test_reading_checks.py proves both evaluators give the same
verdicts on generated readings.

Before the rules, a reading is prepared as silver prepares it (`prepare`): the asset registry
row valid at its event time gives asset class and quantity, and reference.units converts its
value to the canonical unit, or gives the unit error silver quarantines it for.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from plantlake.pipelines.transforms.expectations import BLOCKING_ACTIONS, UNIT_RULE, Rule
from plantlake.pipelines.transforms.rules.base import (
    Prepared,
    ReadingContext,
    RuleParams,
    SensorChecks,
)

__all__ = ["Prepared", "ReadingChecker", "Reference", "SensorChecks", "build_reference", "prepare"]

# Quantities of edge window features with no unit (as pipelines.unit_conversion.UNITLESS_FEATURES).
UNITLESS = frozenset(("ratio", "energy"))
_NO_UNIT_NEEDED = UNITLESS | {"state"}


@dataclass(frozen=True, slots=True)
class UnitRow:
    """One reference.units row: a device unit, its quantity and the conversion to canonical."""

    quantity: str
    canonical: str
    scale: float
    offset: float


@dataclass(frozen=True, slots=True)
class RegistryRow:
    """One reference.asset_registry row of a sensor: valid from (inclusive) to (exclusive)."""

    asset_class: str
    quantity: str
    valid_from_ms: int
    valid_to_ms: int | None  # None: open


@dataclass(frozen=True)
class Reference:
    """The reference tables as lookups: units by device unit, registry rows by (asset, sensor)."""

    units: Mapping[str, UnitRow]
    registry: Mapping[tuple[str, str], Sequence[RegistryRow]]

    def registry_row(self, asset: str, sensor: str, event_time_ms: int) -> RegistryRow | None:
        for row in self.registry.get((asset, sensor), ()):
            if row.valid_from_ms <= event_time_ms and (
                row.valid_to_ms is None or event_time_ms < row.valid_to_ms
            ):
                return row
        return None


def build_reference(unit_rows: Iterable[Mapping], registry_rows: Iterable[Mapping]) -> Reference:
    """The lookups from reference.units rows (unit, quantity, canonical_unit, scale, offset) and
    reference.asset_registry rows (asset, sensor, asset_class, quantity, valid_from, valid_to as
    epoch milliseconds or datetimes; a naive datetime is UTC, as Spark writes it)."""
    units = {
        (row["unit"] or ""): UnitRow(row["quantity"], row["canonical_unit"] or "",
                                     float(row["scale"]), float(row["offset"]))
        for row in unit_rows
    }  # fmt: skip
    registry: dict[tuple[str, str], list[RegistryRow]] = {}
    for row in registry_rows:
        to = row["valid_to"]
        registry.setdefault((row["asset"], row["sensor"]), []).append(
            RegistryRow(
                asset_class=row["asset_class"],
                quantity=row["quantity"],
                valid_from_ms=epoch_ms(row["valid_from"]),
                valid_to_ms=None if to is None else epoch_ms(to),
            )
        )
    return Reference(units=units, registry=registry)


def epoch_ms(value: int | dt.datetime) -> int:
    """Epoch milliseconds of a timestamp: as it is when it is a number already (the hot path
    reads them so), and a naive datetime is UTC (Spark writes them so)."""
    if not isinstance(value, dt.datetime):
        return int(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def prepare(record: Mapping, reference: Reference) -> Prepared:
    """A canonical record joined to the registry and normalized to canonical units.

    Mirrors `join_registry` and `normalize_units`: an unknown unit, a missing unit where the
    registry expects a measured quantity, or a unit of another quantity is an error, not a guess.
    """
    asset, sensor, t = record["asset"], record["sensor"], record["event_time_ms"]
    registered = reference.registry_row(asset, sensor, t)
    expected = registered.quantity if registered else None
    unit = record.get("unit") or ""
    found = reference.units.get(unit)
    given = unit != ""
    error = (
        (given and found is None)
        or (not given and expected is not None and expected not in _NO_UNIT_NEEDED)
        or (given and expected is not None and found is not None and found.quantity != expected)
    )
    quantity = expected if expected is not None else (found.quantity if found else None)
    unitless = not given and quantity in UNITLESS
    source = _number(record.get("value"))
    if error:
        value, canonical = None, None
    elif unitless:
        value, canonical = source, None
    elif found is None:
        value, canonical = None, None
    else:
        value = None if source is None else source * found.scale + found.offset
        canonical = found.canonical
    return Prepared(
        asset=asset,
        sensor=sensor,
        asset_class=registered.asset_class if registered else None,
        quantity=quantity,
        value=value,
        unit=canonical,
        quality=record["quality"],
        event_time_ms=t,
        receive_time_ms=record["receive_time_ms"],
        unit_error=error,
    )


class ReadingChecker:
    """Evaluates a rule set on one prepared reading and the sensor's carried `SensorChecks`."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(rules)
        self._actions = {r.name: r.action for r in self.rules} | {UNIT_RULE: "quarantine"}
        # Which rules apply depends only on a sensor's registry columns and unit, so it is worked
        # out once per combination rather than rule by rule for every reading.
        self._scopes: dict[tuple, tuple[tuple[bool, ...], tuple[Rule, ...]]] = {}
        # The rules that carry something per sensor past each reading (stuck's run), found once:
        # the hot path calls failed_rules for every reading.
        self._advancing = tuple(
            r for r in self.rules if type(r.params).advance is not RuleParams.advance
        )

    def _scope(self, r: Prepared) -> tuple[tuple[bool, ...], tuple[Rule, ...]]:
        """(in scope, per rule of `rules`; the plausibility rules in scope) for the reading's
        sensor."""
        key = (r.quantity, r.unit, r.asset_class, r.sensor)
        found = self._scopes.get(key)
        if found is None:
            flags = tuple(rule.params.in_scope(r) for rule in self.rules)
            bounds = tuple(rule for rule, applies in zip(self.rules, flags, strict=True)
                           if applies and rule.params.bounds_plausibility)  # fmt: skip
            found = self._scopes[key] = (flags, bounds)
        return found

    def failed_rules(self, r: Prepared, checks: SensorChecks, *, now_ms: int) -> list[str]:
        """Names of the rules the reading fails (any action), updating `checks` for the next one.

        A reading with a unit error fails only the `unit` rule (silver holds it back before the
        rules). A reading no newer than the sensor's last one cannot be placed in the sequence
        without history, so the sequence rules pass it and it leaves `checks` as they were.
        """
        if r.unit_error:
            return [UNIT_RULE]
        v, t = r.value, r.event_time_ms
        scoped, bounds = self._scope(r)
        ctx = ReadingContext(
            checks,
            now_ms,
            in_order=checks.last_time is None or t > checks.last_time,
            usable=False,  # known once the plausibility rules have looked at the value
            count=checks.count + (1 if v is not None else 0),
        )
        implausible = any(x.params.fails(x.name, r, ctx) for x in bounds)
        ctx.usable = v is not None and r.quality != "Bad" and not implausible
        failed = []
        if ctx.in_order:  # what a rule tracks per sensor moves on, in scope or not
            for rule in self._advancing:
                rule.params.advance(rule.name, r, ctx)
        for rule, applies in zip(self.rules, scoped, strict=True):
            if applies and rule.params.fails(rule.name, r, ctx):
                failed.append(rule.name)
        if ctx.in_order:
            checks.last_time = t
            if ctx.usable:
                checks.prev_value, checks.prev_time = v, t
            if v is not None:
                checks.prev_raw, checks.count = v, ctx.count
                checks.runs.update({k: run for k, run in ctx.runs.items() if run is not None})
        return failed

    def blocked(self, failed: Sequence[str]) -> bool:
        """Whether silver keeps the reading out of silver.telemetry (fail, quarantine or drop)."""
        return any(self._actions[name] in BLOCKING_ACTIONS for name in failed)
