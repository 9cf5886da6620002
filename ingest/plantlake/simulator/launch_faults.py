"""Faults the simulated plant shows in its first minute, so that silver's rules have something to
catch as soon as `plantlake simulate` or `make demo` runs (simulator layer, pure).

The plant's own faults are rare (a stuck current sensor hours after the start, a spike every few
minutes somewhere); these are scheduled around the launch (`plant.start_ms`) instead:

- impossible: a bearing temperature of 900 degC (in the unit its device reports) on an OPC-UA
  asset (Modbus if the plant has none) 20 s after the launch, for 5 s (late enough for edge
  processes started with the simulator to have subscribed);
- NaN/Bad: the same sensor reports NaN with Bad quality at +26 s, for 4 s;
- NaN/Good: then NaN with Good quality at +31 s, for 4 s (silver's range rule holds such a
  reading back: no value, yet nothing says why);
- stuck: a temperature of a Sparkplug asset has repeated one value (what it read at midnight
  UTC that day) since 20 minutes before the launch, until a technician fixes it 10 minutes
  after; its gateway was running before the lake came up, and the store-and-forward backlog it
  replays after its first births carries the minutes of identical readings that silver's stuck
  rule needs (`sparkplug_node`);
- wrong unit: a temperature tag of another Sparkplug asset is misconfigured with the unit "bar"
  until 30 s after the launch, when it is corrected and its gateway rebirths (`sparkplug_node`).

Which assets and sensors carry them depends on the plant's assets only, not on `start_ms`: a
process that builds the same plant with another start (the demo reading the lake back) finds
the same ones. A plant built for the historian backfill, which starts at midnight days ago,
shows these faults at its start too; they are short (the longest ends 10 minutes after it).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum

from plantlake.core.plant import Asset, Fault, Plant, Sensor
from plantlake.core.records import Quality
from plantlake.core.units import ALIASES, registry

SECOND_MS, MINUTE_MS, DAY_MS = 1000, 60_000, 86_400_000
# How far back a Sparkplug gateway's store-and-forward backlog reaches at the launch.
BACKLOG_MS = 20 * MINUTE_MS
IMPOSSIBLE_DEGC = 900.0
# A unit of another dimension per quantity: what a misconfigured tag declares.
WRONG_UNITS = {"temperature": "bar", "pressure": "degC", "current": "bar", "flow": "A",
               "speed": "bar"}  # fmt: skip
# The stuck sensor: the first quantity of these its asset has (the stuck rule checks them all).
# Temperature first: a stopped machine reads exactly 0 bar, 0 m3/h or 0 A, a value the stuck
# rule lets a sensor hold, and the frozen instant may fall in a stop.
STUCK_QUANTITIES = ("temperature", "pressure", "flow", "current", "speed")


class LaunchFaultKind(StrEnum):
    IMPOSSIBLE = "impossible"
    NAN_BAD = "nan_bad"
    NAN_GOOD = "nan_good"
    STUCK = "stuck"
    WRONG_UNIT = "wrong_unit"


# How a person names each kind (the demo's report, `plantlake simulate`'s launch line).
KIND_LABELS = {
    LaunchFaultKind.IMPOSSIBLE: "impossible reading",
    LaunchFaultKind.NAN_BAD: "NaN with Bad quality",
    LaunchFaultKind.NAN_GOOD: "NaN reported Good",
    LaunchFaultKind.STUCK: "stuck sensor",
    LaunchFaultKind.WRONG_UNIT: "wrong unit",
}


@dataclass(frozen=True)
class Frozen:
    """The sensor reads what it read at `at_ms` (a stuck transmitter)."""

    at_ms: int


@dataclass(frozen=True)
class LaunchFault:
    """One fault of one sensor during [start_ms, end_ms)."""

    kind: LaunchFaultKind
    asset: str  # asset path
    sensor: str
    start_ms: int
    end_ms: int
    value: float | None = None  # impossible: the reading, in the unit the device reports
    # Impossible: the unit of `value` (the device's); wrong unit: what the bad tag declares.
    unit: str | None = None
    frozen_at_ms: int | None = None  # stuck: the instant whose value the sensor repeats

    def active(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms


@dataclass(frozen=True)
class LaunchFaults:
    """The launch faults of a plant; `backlog_ms` is how far back a Sparkplug gateway's
    store-and-forward buffer reaches at the launch."""

    launch_ms: int
    faults: tuple[LaunchFault, ...]
    backlog_ms: int = BACKLOG_MS
    # Per (asset path, sensor): its faults. value_at asks per sample; a scan of every fault
    # for every sample would cost more than the answer.
    _by_sensor: dict[tuple[str, str], tuple[LaunchFault, ...]] = field(
        init=False, repr=False, compare=False
    )
    _span: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_sensor: dict[tuple[str, str], tuple[LaunchFault, ...]] = {}
        for fault in self.faults:
            key = (fault.asset, fault.sensor)
            by_sensor[key] = (*by_sensor.get(key, ()), fault)
        object.__setattr__(self, "_by_sensor", by_sensor)
        span = (
            (min(f.start_ms for f in self.faults), max(f.end_ms for f in self.faults))
            if self.faults
            else (0, 0)
        )
        object.__setattr__(self, "_span", span)

    def of_kind(self, kind: LaunchFaultKind) -> LaunchFault | None:
        return next((f for f in self.faults if f.kind is kind), None)

    def active(self, asset: str, sensor: str, t_ms: int) -> tuple[LaunchFault, ...]:
        """The faults of a sensor (by asset path and name) at a time."""
        if not self._span[0] <= t_ms < self._span[1]:
            return ()
        return tuple(f for f in self._by_sensor.get((asset, sensor), ()) if f.active(t_ms))

    def declared_unit(self, asset: str, sensor: str, t_ms: int) -> str | None:
        """The wrong unit a misconfigured tag declares at a time, or None (its own unit)."""
        for fault in self.active(asset, sensor, t_ms):
            if fault.kind is LaunchFaultKind.WRONG_UNIT:
                return fault.unit
        return None

    def describe(self, assets: Collection[str] | None = None) -> list[str]:
        """One phrase per fault (of `assets`, paths, if given), times relative to the launch."""
        return [
            _phrase(f, self.launch_ms) for f in self.faults if assets is None or f.asset in assets
        ]


def _offset(ms: int) -> str:
    sign = "+" if ms >= 0 else "-"
    ms = abs(ms)
    return f"{sign}{ms // MINUTE_MS} min" if ms % MINUTE_MS == 0 else f"{sign}{ms / 1000:g} s"


def _phrase(f: LaunchFault, launch_ms: int) -> str:
    where = f"{f.asset} {f.sensor}"
    start, end = _offset(f.start_ms - launch_ms), _offset(f.end_ms - launch_ms)
    if f.kind is LaunchFaultKind.IMPOSSIBLE and f.value is not None:
        reading = f"{f.value:g} {f.unit}" if f.unit else f"{f.value:g}"
        return f"{where} reads {reading} ({IMPOSSIBLE_DEGC:g} degC) from {start} to {end}"
    if f.kind is LaunchFaultKind.STUCK:
        return f"{where} stuck from {start} (its gateway replays the backlog) to {end}"
    if f.kind is LaunchFaultKind.WRONG_UNIT:
        return f"{where} declared in {f.unit!r} until a rebirth at {end}"
    return f"{where} {KIND_LABELS[f.kind]} from {start} to {end}"


def _clean(asset: Asset) -> bool:
    """No fault of the plant's own: the launch faults stay easy to tell apart."""
    return (
        asset.stuck_from_ms is None
        and asset.dies_at_ms is None
        and asset.clock_drift_ppm == 0
        and not any(Fault.STUCK in s.faults or Fault.NAN in s.faults for s in asset.sensors)
    )


def _slow(asset: Asset, quantity: str) -> Sensor | None:
    return next((s for s in asset.sensors if s.quantity == quantity and not s.rate_hz), None)


def _in_unit(degc: float, unit: str) -> float:
    target = ALIASES.get(unit, unit)
    return round(float(registry().Quantity(degc, "degree_Celsius").to(target).magnitude), 2)


def _value_faults(plant: Plant, launch: int) -> list[LaunchFault]:
    """Impossible and NaN readings on a temperature of an OPC-UA asset (else Modbus, else any),
    rotating (pump or motor) if there is one, so the bearing rule fires too."""
    rank = {"opcua": 0, "modbus": 1}
    candidates = sorted(
        (a for a in plant.assets if _clean(a) and _slow(a, "temperature")),
        key=lambda a: (rank.get(a.protocol, 2), a.kind not in ("pump", "motor")),
    )
    if not candidates:
        return []
    asset = candidates[0]
    sensor = _slow(asset, "temperature")
    assert sensor is not None  # candidates have one
    path, name, s = asset.path, sensor.name, SECOND_MS
    return [
        LaunchFault(LaunchFaultKind.IMPOSSIBLE, path, name, launch + 20 * s, launch + 25 * s,
                    value=_in_unit(IMPOSSIBLE_DEGC, sensor.unit), unit=sensor.unit),
        LaunchFault(LaunchFaultKind.NAN_BAD, path, name, launch + 26 * s, launch + 30 * s),
        LaunchFault(LaunchFaultKind.NAN_GOOD, path, name, launch + 31 * s, launch + 35 * s),
    ]  # fmt: skip


def _gateway_faults(plant: Plant, launch: int, backlog_ms: int) -> list[LaunchFault]:
    """A stuck sensor and a misconfigured unit on Sparkplug assets: only a gateway replays a
    backlog, and only a birth declares a unit."""
    assets = [a for a in plant.by_protocol("sparkplug") if _clean(a)]
    out: list[LaunchFault] = []
    stuck = next(
        ((a, s) for a in assets for q in STUCK_QUANTITIES if (s := _slow(a, q)) is not None),
        None,
    )
    if stuck is not None:
        start = launch - backlog_ms
        # Frozen at the value of the start of that day: a demo run again the same day repeats
        # the same value, so silver's stuck run goes on across the runs (its replay overlaps
        # readings silver already judged, which the stuck rule cannot place in sequence).
        out.append(LaunchFault(LaunchFaultKind.STUCK, stuck[0].path, stuck[1].name, start,
                               launch + 10 * MINUTE_MS, frozen_at_ms=start - start % DAY_MS))  # fmt: skip
    # Another asset than the stuck one when there is one, so each shows one fault.
    others = [a for a in assets if stuck is None or a is not stuck[0]] + assets
    wrong = next(((a, s) for a in others if (s := _slow(a, "temperature")) is not None), None)
    if wrong is not None:
        out.append(LaunchFault(LaunchFaultKind.WRONG_UNIT, wrong[0].path, wrong[1].name,
                               launch - backlog_ms, launch + 30 * SECOND_MS,
                               unit=WRONG_UNITS[wrong[1].quantity]))  # fmt: skip
    return out


def schedule(plant: Plant, *, backlog_ms: int = BACKLOG_MS) -> LaunchFaults:
    """The launch faults of a plant, computed (`launch_faults` caches them per plant)."""
    launch = plant.start_ms
    faults = (*_value_faults(plant, launch), *_gateway_faults(plant, launch, backlog_ms))
    return LaunchFaults(launch_ms=launch, faults=faults, backlog_ms=backlog_ms)


# Per plant object: Plant holds a dict, so it cannot key a functools cache. The weak reference
# tells a live plant from a new one that reuses a collected plant's id.
_cache: dict[int, tuple[weakref.ref[Plant], LaunchFaults]] = {}
_cache_lock = threading.Lock()


def launch_faults(plant: Plant) -> LaunchFaults:
    """The launch faults of a plant, computed once per plant object."""
    entry = _cache.get(id(plant))
    if entry is not None and entry[0]() is plant:
        return entry[1]
    faults = schedule(plant)
    with _cache_lock:
        for key in [k for k, (ref, _) in _cache.items() if ref() is None]:
            del _cache[key]
        _cache[id(plant)] = (weakref.ref(plant), faults)
    return faults


def launch_fault(
    plant: Plant, asset: Asset, sensor: Sensor, t_ms: int
) -> tuple[float, Quality] | Frozen | None:
    """The launch fault of a slow sensor at a time: a value and quality to report instead,
    `Frozen` to report its value at another time, or None (no launch fault then)."""
    for fault in launch_faults(plant).active(asset.path, sensor.name, t_ms):
        if fault.kind is LaunchFaultKind.IMPOSSIBLE and fault.value is not None:
            return fault.value, Quality.GOOD
        if fault.kind is LaunchFaultKind.NAN_BAD:
            return math.nan, Quality.BAD
        if fault.kind is LaunchFaultKind.NAN_GOOD:
            return math.nan, Quality.GOOD
        if fault.kind is LaunchFaultKind.STUCK and fault.frozen_at_ms is not None:
            return Frozen(fault.frozen_at_ms)
    return None  # a wrong unit leaves the value alone: only the gateway's birth is wrong
