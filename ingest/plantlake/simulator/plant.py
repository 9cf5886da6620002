"""The simulated plant: assets, their signals, degradation, failures and deliberate faults.

Pure and deterministic: every value is a function of (seed, asset, sensor, time), so a device
server can answer for any instant, tests can predict what a client must see, and the plant runs
as fast as the caller advances its clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np

from plantlake.core.plant import HOUR_MS, Asset, CmmsLogEntry, Failure, Fault, Plant, Sensor
from plantlake.core.records import Quality
from plantlake.simulator.launch_faults import Frozen, launch_fault

_MASK = (1 << 64) - 1


def _mix(*parts: int) -> int:
    """splitmix64 over the parts: a cheap, stateless, well-spread hash."""
    z = 0x9E3779B97F4A7C15
    for part in parts:
        z = (z + (part & _MASK) + 0x9E3779B97F4A7C15) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        z ^= z >> 31
    return z


def _uniform(*parts: int) -> float:
    return _mix(*parts) / 2**64


def _gauss(*parts: int) -> float:
    """Approximately standard normal (Irwin-Hall of four uniforms, rescaled)."""
    return (sum(_uniform(*parts, k) for k in range(4)) - 2.0) * math.sqrt(3.0)


# Canonical unit -> the device's unit: (scale, offset). Devices report some signals in other
# units on purpose, for silver to normalize.
_TO_DEVICE = {"degF": (1.8, 32.0), "K": (1.0, 273.15), "psi": (14.5038, 0.0)}


def _device(value: float, unit: str) -> float:
    scale, offset = _TO_DEVICE.get(unit, (1.0, 0.0))
    return value * scale + offset


def _sensor(name: str, quantity: str, unit: str, low: float, high: float, noise: float,
            **more) -> Sensor:  # fmt: skip
    """A sensor whose normal range `low`..`high` is given in the canonical unit."""
    return Sensor(name, quantity, unit, (round(_device(low, unit), 3), round(_device(high, unit), 3)),
                  noise, **more)  # fmt: skip


def _sensors(kind: str, variant: int) -> tuple[Sensor, ...]:
    temp_unit = ("degC", "degF", "K")[variant % 3]
    pres_unit = ("bar", "psi")[variant % 2]
    spike = {"degC": 600.0, "degF": 1112.0, "K": 873.15}[temp_unit]
    # Some temperature transmitters drift out of calibration: a slow rise that is not a fault.
    drift = 0.15 if variant % 5 == 2 else 0.0
    temperature = _sensor("bearing_temperature", "temperature", temp_unit, 20.0, 110.0, 0.2,
                          drift_per_day=drift, faults=(Fault.SPIKES,), spike_value=spike)  # fmt: skip
    current = _sensor("motor_current", "current", "A", 0.0, 60.0, 0.3)
    vibration = _sensor("vibration", "vibration", "mm/s", 0.0, 12.0, 0.3, rate_hz=2000.0)
    if kind == "pump":
        return (
            temperature,
            _sensor("discharge_pressure", "pressure", pres_unit, 0.0, 8.0, 0.02),
            _sensor("flow", "flow", "m3/h", 0.0, 160.0, 1.0),
            current, vibration,
        )  # fmt: skip
    if kind == "motor":
        return temperature, current, vibration, _sensor("speed", "speed", "rpm", 0.0, 1600.0, 1.0)
    return (  # press
        temperature,
        _sensor("hydraulic_pressure", "pressure", pres_unit, 0.0, 220.0, 1.0),
        _sensor("running", "state", "", 0.0, 1.0, 0.0),
    )  # fmt: skip


# Failure modes by asset class, with their share of the class's failures.
FAILURE_MODES: dict[str, dict[str, float]] = {
    "pump": {"bearing_wear": 0.3, "imbalance": 0.15, "cavitation": 0.25, "seal_leak": 0.2,
             "winding": 0.1},
    "motor": {"bearing_wear": 0.45, "imbalance": 0.3, "winding": 0.25},
    "press": {"seal_leak": 0.7, "winding": 0.3},
}  # fmt: skip
# Days from a repair to the next fault's onset: pumps fail most often, presses least.
HEALTHY_DAYS = {"pump": (3.0, 10.0), "motor": (5.0, 14.0), "press": (8.0, 20.0)}
# How long each mode degrades before it fails, in hours: hours for cavitation, weeks for wear.
DEGRADATION_HOURS = {"bearing_wear": (72.0, 336.0), "imbalance": (24.0, 120.0),
                     "cavitation": (6.0, 48.0), "seal_leak": (48.0, 240.0),
                     "winding": (12.0, 96.0)}  # fmt: skip
SUDDEN_SHARE, SUDDEN_HOURS = 0.15, (1.0, 4.0)  # failures with little warning
REPAIR_HOURS = (4.0, 12.0)
IMPERFECT_REPAIR_SHARE = 0.2  # repairs that leave the fault in place, to fail again sooner
# Load regimes: each asset runs at a level held for a block, or is stopped for the block.
REGIME_MS = 2 * HOUR_MS
STOPPED_SHARE = 0.08
THERMAL_TAU_MS = 20 * 60_000  # temperatures follow load changes with this time constant
DAY_MS = 24 * HOUR_MS


def _failures(
    seed: int, position: int, kind: str, start_ms: int, end_ms: int
) -> tuple[Failure, ...]:
    """An asset's degradations ending in failures from `start_ms` to `end_ms`. Its own random
    stream, so the schedule does not depend on the horizon or on the other assets."""
    rng = random.Random(_mix(seed, position, 0xFA11))
    modes = FAILURE_MODES[kind]
    t = start_ms - int(rng.uniform(0.0, 6.0) * DAY_MS)  # the plant ran before the simulation
    out: list[Failure] = []
    residual, mode = 0.0, ""
    while True:
        low, high = DEGRADATION_HOURS.get(mode, (1.0, 1.0))
        if residual == 0.0:
            t += int(rng.uniform(*HEALTHY_DAYS[kind]) * DAY_MS)
            mode = rng.choices(list(modes), weights=list(modes.values()))[0]
            low, high = DEGRADATION_HOURS[mode]
            sudden = rng.random() < SUDDEN_SHARE
            hours = rng.uniform(*SUDDEN_HOURS) if sudden else rng.uniform(low, high)
        else:
            hours = 0.3 * rng.uniform(low, high)  # an unfixed fault fails again sooner
        failure = t + int(hours * HOUR_MS)
        repaired = failure + int(rng.uniform(*REPAIR_HOURS) * HOUR_MS)
        fixed = rng.random() >= IMPERFECT_REPAIR_SHARE
        shape = rng.uniform(0.7, 3.0)
        if failure > end_ms:
            return tuple(out)
        if failure > start_ms:
            out.append(Failure(mode, t, failure, repaired, shape, residual, fixed))
        residual = 0.0 if fixed else rng.uniform(0.4, 0.7)
        t = repaired


def build_plant(
    seed: int = 7,
    *,
    lines: int = 2,
    assets_per_line: int = 6,
    start_ms: int = 1_767_225_600_000,  # 2026-01-01T00:00:00Z
    horizon_ms: int = 30 * 24 * HOUR_MS,
) -> Plant:
    """A plant of `lines` lines with presses, pumps and motors spread over the three protocols."""
    kinds = ("press", "pump", "motor")
    protocols = ("opcua", "modbus", "sparkplug")
    assets: list[Asset] = []
    for line in range(1, lines + 1):
        for i in range(assets_per_line):
            variant = (line - 1) * assets_per_line + i
            kind = kinds[i % 3]
            sensors = _sensors(kind, variant)
            if variant == 4:  # one stuck sensor and one source of NaNs
                sensors = tuple(
                    replace(s, faults=(Fault.STUCK, Fault.NAN)) if s.quantity == "current" else s
                    for s in sensors
                )
            assets.append(
                Asset(
                    site="plant1",
                    line=f"line{line}",
                    name=f"{kind}-{variant + 1:02d}",
                    kind=kind,
                    # Every protocol serves every kind of asset somewhere in the plant.
                    protocol=protocols[(i + line) % 3],
                    sensors=sensors,
                    clock_drift_ppm=500.0 if variant == 7 else 0.0,
                    dies_at_ms=start_ms + 6 * HOUR_MS if variant == 10 else None,
                    stuck_from_ms=start_ms + 2 * HOUR_MS if variant == 4 else None,
                )
            )
    failures = {
        asset.path: _failures(seed, position, asset.kind, start_ms, start_ms + horizon_ms)
        for position, asset in enumerate(assets)
    }
    return Plant(seed=seed, start_ms=start_ms, assets=tuple(assets), failures=failures)


def failure_at(plant: Plant, asset: Asset, t_ms: int) -> Failure | None:
    """The degradation (or the failure awaiting repair) an asset is in at a time, if any."""
    for failure in plant.failures.get(asset.path, ()):
        if failure.onset_ms <= t_ms < failure.repaired_ms:
            return failure
        if failure.onset_ms > t_ms:
            return None
    return None


def severity(plant: Plant, asset: Asset, t_ms: int) -> tuple[str | None, float]:
    """The fault mode an asset degrades in at a time and how far (0 healthy .. 1 failed)."""
    failure = failure_at(plant, asset, t_ms)
    return (None, 0.0) if failure is None else (failure.mode, failure.severity(t_ms))


def health(plant: Plant, asset: Asset, t_ms: int) -> float:
    """1.0 when healthy, falling to 0.0 at a failure; back to 1.0 after a repair that fixed it."""
    return 1.0 - severity(plant, asset, t_ms)[1]


def is_down(plant: Plant, asset: Asset, t_ms: int) -> bool:
    """Failed and not yet repaired: the asset is stopped."""
    failure = failure_at(plant, asset, t_ms)
    return failure is not None and t_ms >= failure.failure_ms


def _block_load(plant: Plant, a: int, block: int, *, stops: bool = True) -> float:
    if stops and _uniform(plant.seed, a, block, 11) < STOPPED_SHARE:
        return 0.0
    return 0.5 + 0.5 * _uniform(plant.seed, a, block, 12)


def load(plant: Plant, asset: Asset, t_ms: int) -> float:
    """The operating regime: 0 when stopped (planned, or failed), else a load of 0.5 to 1 held
    for a two-hour block. Load moves every signal without any fault. No planned stop falls in
    the first two hours: a plant just launched shows every machine running."""
    if is_down(plant, asset, t_ms):
        return 0.0
    stops = t_ms - plant.start_ms >= REGIME_MS
    return _block_load(plant, plant.position(asset), t_ms // REGIME_MS, stops=stops)


def thermal_load(plant: Plant, asset: Asset, t_ms: int) -> float:
    """The load as temperatures feel it: the last change of load, lagged first-order."""
    now = load(plant, asset, t_ms)
    changed = t_ms - t_ms % REGIME_MS
    failure = failure_at(plant, asset, t_ms)
    if failure is not None and failure.failure_ms <= t_ms:
        changed = max(changed, failure.failure_ms)
    before = load(plant, asset, changed - 1)
    return now + (before - now) * math.exp(-(t_ms - changed) / THERMAL_TAU_MS)


def _canonical(plant: Plant, asset: Asset, sensor: Sensor, t_ms: int, a: int, s: int) -> float:
    """A slow signal in its canonical unit: regime, fault signature, drift and noise."""
    mode, sev = severity(plant, asset, t_ms)

    def of(name: str) -> float:
        return sev if mode == name else 0.0

    level = load(plant, asset, t_ms)
    if sensor.quantity == "state":
        return 1.0 if level > 0 else 0.0
    noise = sensor.noise * _gauss(plant.seed, a, s, t_ms // 100)
    if sensor.quantity == "temperature":
        # Bearing wear heats late (after the vibration shows it); a winding fault heats too.
        heat = 28.0 + 30.0 * of("bearing_wear") ** 2 + 22.0 * of("winding") ** 1.5
        ambient = 30.0 + 2.0 * math.sin(2 * math.pi * t_ms / DAY_MS)
        drift = sensor.drift_per_day * (t_ms - plant.start_ms) / DAY_MS
        return ambient + heat * thermal_load(plant, asset, t_ms) + drift + noise
    if level == 0.0:
        return 0.0  # stopped: no current, flow, pressure or speed
    if sensor.quantity == "current":
        # A winding fault draws more and unevenly (phase asymmetry shows as ripple).
        ripple = 1.0 + 10.0 * of("winding") + 5.0 * of("cavitation")
        return (
            6.0
            + 38.0 * level
            + 5.0 * of("winding")
            + 2.0 * of("bearing_wear") ** 2
            + noise * ripple
        )
    if sensor.name == "discharge_pressure":
        swing = 1.0 + 10.0 * of("cavitation")
        return 2.5 + 4.0 * level - 2.0 * of("cavitation") - 2.5 * of("seal_leak") + noise * swing
    if sensor.name == "hydraulic_pressure":
        return 140.0 + 60.0 * level - 70.0 * of("seal_leak") + noise
    if sensor.quantity == "flow":
        swing = 1.0 + 6.0 * of("cavitation")
        return (
            50.0 + 90.0 * level - 25.0 * of("cavitation") - 12.0 * of("seal_leak") + noise * swing
        )
    if sensor.quantity == "speed":
        return 1500.0 - 20.0 * level - 25.0 * of("winding") + noise
    return noise


def value_at(plant: Plant, asset: Asset, sensor: Sensor, t_ms: int) -> tuple[float, Quality]:
    """The slow value of a sensor at a time, in the unit the device reports."""
    a = plant.position(asset)
    s = asset.sensors.index(sensor)
    if sensor.rate_hz:
        return rms(waveform(plant, asset, sensor, t_ms, 256)), Quality.GOOD
    launch = launch_fault(plant, asset, sensor, t_ms)
    if isinstance(launch, Frozen):
        t_ms = launch.at_ms
    elif launch is not None:
        return launch
    if Fault.STUCK in sensor.faults and asset.stuck_from_ms and t_ms >= asset.stuck_from_ms:
        t_ms = asset.stuck_from_ms  # frozen at its last live value
    second = t_ms // 1000
    if Fault.NAN in sensor.faults and _uniform(plant.seed, a, s, second, 1) < 0.002:
        return math.nan, Quality.BAD
    if Fault.SPIKES in sensor.faults and _uniform(plant.seed, a, s, second, 2) < 0.0005:
        return float(sensor.spike_value if sensor.spike_value is not None else 1e6), Quality.GOOD
    return _device(_canonical(plant, asset, sensor, t_ms, a, s), sensor.unit), Quality.GOOD


SHAFT_HZ = 24.7  # 1x running speed of a 1480 rpm machine
BEARING_HZ = 157.3  # a bearing defect's tone
LINE_2X_HZ = 100.0  # twice the 50 Hz supply: electrical (winding) vibration
CAVITATION_HZ = np.arange(560.0, 941.0, 40.0)  # the broadband crackle, as a cluster of tones


def waveform(plant: Plant, asset: Asset, sensor: Sensor, t0_ms: int, n: int) -> np.ndarray:
    """`n` samples of a high-rate vibration signal from `t0_ms` at `sensor.rate_hz` (mm/s).

    Each mode has its own signature: imbalance grows the 1x tone (0-50 Hz band), bearing wear a
    tone at its defect frequency (50-200 Hz) with broadband noise, a winding fault the 2x line
    frequency, cavitation a crackle at 500-1000 Hz. A stopped machine barely vibrates."""
    a = plant.position(asset)
    t = t0_ms / 1000 + np.arange(n) / sensor.rate_hz
    mode, sev = severity(plant, asset, t0_ms)
    level = load(plant, asset, t0_ms)
    rng = np.random.default_rng(_mix(plant.seed, a, t0_ms))
    if level == 0.0:
        return 0.05 * rng.standard_normal(n)
    phase = _uniform(plant.seed, a, 3) * 2 * np.pi
    one_x = 0.8 + 1.2 * level + (5.0 * sev if mode == "imbalance" else 0.0)
    signal = one_x * np.sin(2 * np.pi * SHAFT_HZ * t + phase)
    floor = sensor.noise
    if mode == "bearing_wear":
        signal += 4.0 * sev * np.sin(2 * np.pi * BEARING_HZ * t)
        floor += 1.0 * sev
    elif mode == "winding":
        signal += 2.0 * sev * np.sin(2 * np.pi * LINE_2X_HZ * t)
    elif mode == "cavitation":
        phases = rng.uniform(0, 2 * np.pi, len(CAVITATION_HZ))
        tones = np.sin(2 * np.pi * CAVITATION_HZ[:, None] * t[None, :] + phases[:, None])
        signal += 3.0 * sev * tones.sum(axis=0) / np.sqrt(len(CAVITATION_HZ))
        floor += 0.8 * sev
    return signal + floor * rng.standard_normal(n)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples))))


def device_time_ms(asset: Asset, plant: Plant, t_ms: int) -> int:
    """The timestamp the asset's device stamps on a value: its clock may drift."""
    return t_ms + int((t_ms - plant.start_ms) * asset.clock_drift_ppm / 1e6)


def maintenance_log(plant: Plant, until_ms: int) -> list[CmmsLogEntry]:
    """Failures and repairs up to `until_ms`, as a CMMS would export them."""
    events = []
    for path, failures in plant.failures.items():
        for f in failures:
            if f.failure_ms <= until_ms:
                events.append(CmmsLogEntry(path, "failure", f.mode, f.failure_ms))
            if f.repaired_ms <= until_ms:
                events.append(CmmsLogEntry(path, "repair", f.mode, f.repaired_ms))
    return sorted(events, key=lambda e: (e.time_ms, e.asset))
