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

from plantlake.core.plant import HOUR_MS, Asset, CmmsLogEntry, Fault, Plant, Sensor
from plantlake.core.records import Quality

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


def _sensors(kind: str, variant: int) -> tuple[Sensor, ...]:
    # A few devices report in other units on purpose: silver must normalize them.
    temp_unit = ("degC", "degF", "K")[variant % 3]
    temp = {"degC": (55.0, 1.0), "degF": (131.0, 1.8), "K": (328.15, 1.0)}[temp_unit]
    pres_unit = ("bar", "psi")[variant % 2]
    pres_scale = 1.0 if pres_unit == "bar" else 14.5038
    spike = {"degC": 600.0, "degF": 1112.0, "K": 873.15}[temp_unit]
    temperature = Sensor("bearing_temperature", "temperature", temp_unit, temp[0], 3.0 * temp[1],
                         0.2 * temp[1], 1800.0, wear_gain=25.0 * temp[1],
                         faults=(Fault.SPIKES,), spike_value=spike)  # fmt: skip
    current = Sensor("motor_current", "current", "A", 42.0, 4.0, 0.3, 900.0, wear_gain=6.0)
    vibration = Sensor("vibration", "vibration", "mm/s", 0.0, 2.0, 0.3, rate_hz=2000.0,
                       wear_gain=6.0)  # fmt: skip
    if kind == "pump":
        return (
            temperature,
            Sensor("discharge_pressure", "pressure", pres_unit, 6.0 * pres_scale,
                   0.3 * pres_scale, 0.02 * pres_scale, 300.0, wear_gain=-1.0 * pres_scale),
            Sensor("flow", "flow", "m3/h", 120.0, 10.0, 1.0, 600.0, wear_gain=-15.0),
            current, vibration,
        )  # fmt: skip
    if kind == "motor":
        return (
            temperature, current, vibration,
            Sensor("speed", "speed", "rpm", 1480.0, 5.0, 1.0, 120.0, wear_gain=-20.0),
        )  # fmt: skip
    return (  # press
        temperature,
        Sensor("hydraulic_pressure", "pressure", pres_unit, 180.0 * pres_scale,
               20.0 * pres_scale, 1.0 * pres_scale, 20.0, wear_gain=-15.0 * pres_scale),
        Sensor("running", "state", "", 1.0, 0.0, 0.0),
    )  # fmt: skip


def build_plant(
    seed: int = 7,
    *,
    lines: int = 2,
    assets_per_line: int = 6,
    start_ms: int = 1_767_225_600_000,  # 2026-01-01T00:00:00Z
    horizon_ms: int = 30 * 24 * HOUR_MS,
) -> Plant:
    """A plant of `lines` lines with presses, pumps and motors spread over the three protocols."""
    rng = random.Random(seed)
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
    failures: dict[str, tuple[int, ...]] = {}
    for asset in assets:
        if asset.kind == "press":
            continue
        times, t = [], start_ms
        while True:
            # Mean time between failures of about ten days, never closer than the wear-out.
            t += int(rng.uniform(4, 16) * 24 * HOUR_MS)
            if t > start_ms + horizon_ms:
                break
            times.append(t)
        failures[asset.path] = tuple(times)
    return Plant(seed=seed, start_ms=start_ms, assets=tuple(assets), failures=failures)


def health(plant: Plant, asset: Asset, t_ms: int) -> float:
    """1.0 when healthy, falling to 0.0 at a failure; back to 1.0 after the repair."""
    for failure in plant.failures.get(asset.path, ()):
        if failure - plant.degradation_ms <= t_ms < failure:
            return (failure - t_ms) / plant.degradation_ms
        if failure <= t_ms < failure + plant.repair_ms:
            return 0.0
    return 1.0


def is_down(plant: Plant, asset: Asset, t_ms: int) -> bool:
    """Failed and not yet repaired: the asset is stopped."""
    return any(f <= t_ms < f + plant.repair_ms for f in plant.failures.get(asset.path, ()))


def value_at(plant: Plant, asset: Asset, sensor: Sensor, t_ms: int) -> tuple[float, Quality]:
    """The slow value of a sensor at a time, in the unit the device reports."""
    a = plant.position(asset)
    s = asset.sensors.index(sensor)
    if sensor.rate_hz:
        return rms(waveform(plant, asset, sensor, t_ms, 256)), Quality.GOOD
    if Fault.STUCK in sensor.faults and asset.stuck_from_ms and t_ms >= asset.stuck_from_ms:
        t_ms = asset.stuck_from_ms  # frozen at its last live value
    second = t_ms // 1000
    if Fault.NAN in sensor.faults and _uniform(plant.seed, a, s, second, 1) < 0.002:
        return math.nan, Quality.BAD
    if Fault.SPIKES in sensor.faults and _uniform(plant.seed, a, s, second, 2) < 0.0005:
        return float(sensor.spike_value or sensor.base * 10), Quality.GOOD
    if sensor.quantity == "state":
        return (0.0 if is_down(plant, asset, t_ms) else 1.0), Quality.GOOD
    phase = _uniform(plant.seed, a, s, 3) * 2 * math.pi
    wave = sensor.amplitude * math.sin(2 * math.pi * t_ms / 1000 / sensor.period_s + phase)
    noise = sensor.noise * _gauss(plant.seed, a, s, t_ms // 100)
    wear = sensor.wear_gain * (1.0 - health(plant, asset, t_ms)) ** 2
    return sensor.base + wave + noise + wear, Quality.GOOD


def waveform(plant: Plant, asset: Asset, sensor: Sensor, t0_ms: int, n: int) -> np.ndarray:
    """`n` samples of a high-rate vibration signal from `t0_ms` at `sensor.rate_hz` (mm/s)."""
    a = plant.position(asset)
    t = t0_ms / 1000 + np.arange(n) / sensor.rate_hz
    worn = 1.0 - health(plant, asset, t0_ms)
    shaft_hz = 24.7
    signal = sensor.amplitude * np.sin(2 * np.pi * shaft_hz * t)
    # A bearing defect shows as a growing tone at its own frequency plus broadband noise.
    signal += sensor.wear_gain * worn * np.sin(2 * np.pi * 157.3 * t)
    rng = np.random.default_rng(_mix(plant.seed, a, t0_ms))
    signal += (sensor.noise + worn) * rng.standard_normal(n)
    return signal


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples))))


def device_time_ms(asset: Asset, plant: Plant, t_ms: int) -> int:
    """The timestamp the asset's device stamps on a value: its clock may drift."""
    return t_ms + int((t_ms - plant.start_ms) * asset.clock_drift_ppm / 1e6)


def maintenance_log(plant: Plant, until_ms: int) -> list[CmmsLogEntry]:
    """Failures and repairs up to `until_ms`, as a CMMS would export them."""
    events = []
    for path, times in plant.failures.items():
        mode = "bearing_wear" if plant.asset(path).kind in ("pump", "motor") else "seal_leak"
        for failure in times:
            if failure <= until_ms:
                events.append(CmmsLogEntry(path, "failure", mode, failure))
            if failure + plant.repair_ms <= until_ms:
                events.append(CmmsLogEntry(path, "repair", mode, failure + plant.repair_ms))
    return sorted(events, key=lambda e: (e.time_ms, e.asset))
