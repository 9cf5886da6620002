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
    # The device's normal operating range in its unit (OPC-UA's EURange): what the healthy
    # signal and its wear span; spikes fall outside it.
    normal_range: tuple[float, float] = (0.0, 1.0)
    noise: float = 0.0  # standard deviation of the measurement noise, in the canonical unit
    drift_per_day: float = 0.0  # calibration drift, canonical unit per day since the plant start
    rate_hz: float = 0.0  # > 0: a high-rate waveform (vibration), sampled with `waveform`
    faults: tuple[Fault, ...] = ()
    spike_value: float | None = None  # in the device unit


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
class Failure:
    """One degradation of an asset that ends in a failure, and the repair after it.

    The fault's severity grows from `residual` at `onset_ms` to 1 at `failure_ms` as
    `progress ** shape` (shape < 1 shows early, > 1 shows late); the asset is down from the
    failure until `repaired_ms`. A repair that did not fix the fault (`fixed` False) leaves a
    residual severity the next degradation of the same mode starts from.
    """

    mode: str  # bearing_wear, imbalance, cavitation, seal_leak, winding
    onset_ms: int
    failure_ms: int
    repaired_ms: int
    shape: float = 1.0
    residual: float = 0.0
    fixed: bool = True

    def severity(self, t_ms: int) -> float:
        """0 before the onset, `residual`..1 during the degradation, 1 while down, 0 after."""
        if t_ms < self.onset_ms or t_ms >= self.repaired_ms:
            return 0.0
        if t_ms >= self.failure_ms:
            return 1.0
        progress = (t_ms - self.onset_ms) / max(1, self.failure_ms - self.onset_ms)
        return self.residual + (1.0 - self.residual) * progress**self.shape


@dataclass(frozen=True)
class Plant:
    seed: int
    start_ms: int
    assets: tuple[Asset, ...]
    # Per asset, its degradations in time order (each ends in a failure and a repair).
    failures: dict[str, tuple[Failure, ...]] = field(default_factory=dict)
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
