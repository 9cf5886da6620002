"""The plant model: sites, lines and assets, each sensor with the quantity and unit its device
reports, and the CMMS log lines that label failures (core layer: data only, no I/O).

The simulator fills the signal fields (`base`, `amplitude`, `noise`, `wear_gain`, `faults`) to
drive its devices; everything else here is what any plant's description holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

HOUR_MS = 3_600_000


class Fault(StrEnum):
    STUCK = "stuck"  # the value freezes from `stuck_from_ms` on
    SPIKES = "spikes"  # rare physically impossible values
    NAN = "nan"  # rare NaN readings with Bad quality


@dataclass(frozen=True)
class Sensor:
    """One signal. `unit` is what the device reports, which may not be the canonical unit."""

    name: str
    quantity: str  # temperature, pressure, current, speed, flow, vibration, state
    unit: str
    base: float
    amplitude: float
    noise: float
    period_s: float = 600.0
    # How much the value moves as the asset's health goes from 1 to 0 (degradation signature).
    wear_gain: float = 0.0
    rate_hz: float = 0.0  # > 0: a high-rate waveform (vibration), sampled with `waveform`
    faults: tuple[Fault, ...] = ()
    spike_value: float | None = None


@dataclass(frozen=True)
class Asset:
    site: str
    line: str
    name: str
    kind: str  # press, pump, motor
    protocol: str  # opcua, modbus, sparkplug
    sensors: tuple[Sensor, ...]
    clock_drift_ppm: float = 0.0  # the device clock runs fast by this much
    dies_at_ms: int | None = None  # stops answering, with no clean disconnect
    stuck_from_ms: int | None = None

    @property
    def path(self) -> str:
        return f"{self.site}/{self.line}/{self.name}"

    def sensor(self, name: str) -> Sensor:
        for sensor in self.sensors:
            if sensor.name == name:
                return sensor
        raise KeyError(f"{self.path} has no sensor {name!r}")


@dataclass(frozen=True)
class CmmsLogEntry:
    """A line of the CMMS log: the ground truth labels for ML."""

    asset: str
    kind: str  # failure, repair, inspection
    failure_mode: str | None
    time_ms: int


@dataclass(frozen=True)
class Plant:
    seed: int
    start_ms: int
    assets: tuple[Asset, ...]
    # Per asset, the times its degradation cycles end in a failure.
    failures: dict[str, tuple[int, ...]] = field(default_factory=dict)
    degradation_ms: int = 48 * HOUR_MS
    repair_ms: int = 4 * HOUR_MS
    # Position of each asset by path: value_at runs per sample, and a list scan compares
    # whole dataclasses, which starves a device server on a large plant.
    _positions: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_positions", {a.path: i for i, a in enumerate(self.assets)})

    def position(self, asset: Asset) -> int:
        return self._positions[asset.path]

    def asset(self, path: str) -> Asset:
        try:
            return self.assets[self._positions[path]]
        except KeyError:
            raise KeyError(f"no asset {path!r}") from None

    def by_protocol(self, protocol: str) -> tuple[Asset, ...]:
        return tuple(a for a in self.assets if a.protocol == protocol)
