"""The expectation rules evaluated on one reading at a time, in plain Python (the hot path's evaluator).

Silver evaluates the same rules (expectations/*.yaml) in Spark over a micro-batch
(`plantlake.pipelines.jobs.quality`); the hot path cannot wait for a batch, so it evaluates them here,
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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from plantlake.pipelines.transforms.expectations import (
    BLOCKING_ACTIONS,
    UNIT_RULE,
    EventTimeParams,
    KnownAssetParams,
    QualityParams,
    RangeParams,
    RateOfChangeParams,
    Rule,
    StuckParams,
)

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


@dataclass(slots=True)
class Prepared:
    """A reading as the rules see it: canonical value (None for null or NaN) and unit, registry
    columns, and `unit_error` when its unit could not be normalized (silver's `unit` rule)."""

    asset: str
    sensor: str
    asset_class: str | None
    quantity: str | None
    value: float | None
    unit: str | None
    quality: str
    event_time_ms: int
    receive_time_ms: int
    unit_error: bool


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
    if error or found is None and not unitless:
        value, canonical = None, None
    elif unitless:
        value, canonical = source, None
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


@dataclass(slots=True)
class SensorChecks:
    """What the sequence rules carry per sensor between readings (by event time).

    prev_value/prev_time: the last usable reading (not null, not Bad, inside its ranges), for
    rate_of_change; prev_raw and count: the last non-null value and how many there were; runs:
    per stuck rule, (event time, count) of the reading that began the current unchanged run.
    """

    last_time: int | None = None
    prev_value: float | None = None
    prev_time: int | None = None
    prev_raw: float | None = None
    count: int = 0
    runs: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "last_time": self.last_time, "prev_value": self.prev_value,
            "prev_time": self.prev_time, "prev_raw": self.prev_raw, "count": self.count,
            "runs": {name: list(run) for name, run in self.runs.items()},
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping) -> SensorChecks:
        runs = {name: (int(run[0]), int(run[1])) for name, run in data.get("runs", {}).items()}
        fields = ("last_time", "prev_value", "prev_time", "prev_raw")
        return cls(**{k: data.get(k) for k in fields}, count=int(data.get("count", 0)), runs=runs)


def _in_scope(rule: Rule, r: Prepared) -> bool:
    p = rule.params
    if isinstance(p, RangeParams | RateOfChangeParams):
        return (
            r.quantity == p.quantity
            and r.unit == p.unit
            and (not p.asset_classes or r.asset_class in p.asset_classes)
            and (not p.sensors or r.sensor in p.sensors)
        )
    if isinstance(p, StuckParams):
        return r.quantity in p.quantities
    return True


def _range_fails(p: RangeParams, r: Prepared) -> bool:
    v = r.value
    if v is None:
        return r.quality != "Bad"  # missing: the quality rule reports a Bad NaN, not this one
    return (p.max is not None and v > p.max) or (p.min is not None and v < p.min)


def _event_time_fails(p: EventTimeParams, r: Prepared, now_ms: int) -> bool:
    t, received = r.event_time_ms, r.receive_time_ms
    return (
        (p.max_future_seconds is not None and t - now_ms > p.max_future_seconds * 1000)
        or (
            p.max_ahead_of_receive_seconds is not None
            and t - received > p.max_ahead_of_receive_seconds * 1000
        )
        or (p.max_delay_seconds is not None and received - t > p.max_delay_seconds * 1000)
    )


class ReadingChecker:
    """Evaluates a rule set on one prepared reading and the sensor's carried `SensorChecks`."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(rules)
        self._actions = {r.name: r.action for r in self.rules} | {UNIT_RULE: "quarantine"}
        # Which rules apply depends only on a sensor's registry columns and unit, so it is worked
        # out once per combination rather than rule by rule for every reading.
        self._scopes: dict[tuple, tuple[tuple[bool, ...], tuple[Rule, ...]]] = {}

    def _scope(self, r: Prepared) -> tuple[tuple[bool, ...], tuple[Rule, ...]]:
        """(in scope, per rule of `rules`; the range rules in scope) for the reading's sensor."""
        key = (r.quantity, r.unit, r.asset_class, r.sensor)
        found = self._scopes.get(key)
        if found is None:
            flags = tuple(_in_scope(rule, r) for rule in self.rules)
            ranges = tuple(rule for rule, applies in zip(self.rules, flags, strict=True)
                           if applies and isinstance(rule.params, RangeParams))  # fmt: skip
            found = self._scopes[key] = (flags, ranges)
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
        scoped, ranges = self._scope(r)
        implausible = any(_range_fails(x.params, r) for x in ranges)
        usable = v is not None and r.quality != "Bad" and not implausible
        in_order = checks.last_time is None or t > checks.last_time
        count = checks.count + (1 if v is not None else 0)
        failed, runs = [], {}
        for rule, applies in zip(self.rules, scoped, strict=True):
            p = rule.params
            if not applies:
                if isinstance(p, StuckParams) and in_order:
                    runs[rule.name] = self._run(p, rule.name, checks, v, t, count)
                continue
            if isinstance(p, RangeParams):
                fails = _range_fails(p, r)
            elif isinstance(p, EventTimeParams):
                fails = _event_time_fails(p, r, now_ms)
            elif isinstance(p, KnownAssetParams):
                fails = r.asset_class is None
            elif isinstance(p, QualityParams):
                fails = r.quality not in p.accepted
            elif isinstance(p, RateOfChangeParams):
                fails = in_order and usable and self._too_fast(p, checks, v, t)
            elif isinstance(p, StuckParams):
                if not in_order:
                    continue
                run = runs[rule.name] = self._run(p, rule.name, checks, v, t, count)
                fails = self._stuck(p, v, t, count, run)
            else:  # parse_rules admits no other kind
                raise AssertionError(f"no evaluation for rule kind {rule.kind!r}")
            if fails:
                failed.append(rule.name)
        if in_order:
            checks.last_time = t
            if usable:
                checks.prev_value, checks.prev_time = v, t
            if v is not None:
                checks.prev_raw, checks.count = v, count
                checks.runs.update(runs)
        return failed

    def blocked(self, failed: Sequence[str]) -> bool:
        """Whether silver keeps the reading out of silver.telemetry (fail, quarantine or drop)."""
        return any(self._actions[name] in BLOCKING_ACTIONS for name in failed)

    @staticmethod
    def _too_fast(p: RateOfChangeParams, checks: SensorChecks, v: float, t: int) -> bool:
        if checks.prev_value is None or checks.prev_time is None:
            return False
        dt_ms = max(t - checks.prev_time, p.min_seconds * 1000)
        return abs(v - checks.prev_value) / (dt_ms / 1000) > p.max_per_second

    @staticmethod
    def _run(
        p: StuckParams, name: str, checks: SensorChecks, v: float | None, t: int, count: int
    ) -> tuple[int, int] | None:
        """(start time, first count) of the unchanged run this reading is in."""
        starts = v is not None and (checks.prev_raw is None or abs(v - checks.prev_raw) > p.epsilon)
        return (t, count) if starts else checks.runs.get(name)

    @staticmethod
    def _stuck(
        p: StuckParams, v: float | None, t: int, count: int, run: tuple[int, int] | None
    ) -> bool:
        if v is None or run is None or v in p.allowed_constant_values:
            return False
        start, first = run
        return count - first + 1 >= p.min_readings and t - start >= p.min_minutes * 60_000
