"""The simulated plant is deterministic and carries the faults and ground truth it promises."""

import csv
import functools
import math
import statistics
from collections import Counter

import numpy as np
import pytest

from plantlake.app.edge_sources import make_source
from plantlake.core.errors import ConfigError
from plantlake.core.records import Quality
from plantlake.core.units import quantity_of
from plantlake.simulator.cmms_export import write_cmms_export
from plantlake.simulator.plant import (
    FAILURE_MODES,
    HOUR_MS,
    REGIME_MS,
    build_plant,
    device_time_ms,
    failure_at,
    health,
    is_down,
    load,
    maintenance_log,
    value_at,
    waveform,
)


def test_same_seed_same_plant_and_values():
    a, b = build_plant(3), build_plant(3)
    assert a == b
    asset = a.assets[1]
    t = a.start_ms + 12_345_678
    assert [value_at(a, asset, s, t) for s in asset.sensors if not s.rate_hz] == [
        value_at(b, b.assets[1], s, t) for s in b.assets[1].sensors if not s.rate_hz
    ]


def test_every_protocol_serves_several_kinds_of_asset():
    plant = build_plant()
    for protocol in ("opcua", "modbus", "sparkplug"):
        assert len({a.kind for a in plant.by_protocol(protocol)}) >= 2, protocol


def test_deliberate_faults_are_present():
    plant = build_plant()
    units = {s.unit for a in plant.assets for s in a.sensors}
    assert {"degF", "K", "psi"} <= units  # silver must normalize these
    assert all(quantity_of(u) for u in units)
    assert any(a.clock_drift_ppm for a in plant.assets)
    assert any(a.dies_at_ms for a in plant.assets)
    stuck = next(a for a in plant.assets if a.stuck_from_ms)
    current = next(s for s in stuck.sensors if s.quantity == "current")
    later = [
        value_at(plant, stuck, current, stuck.stuck_from_ms + k * 60_000)[0] for k in range(1, 30)
    ]
    assert len({v for v in later if not math.isnan(v)}) == 1
    assert any(q == Quality.BAD and math.isnan(v) for v, q in
               (value_at(plant, stuck, current, plant.start_ms + s * 1000) for s in range(5000)))  # fmt: skip


def test_degradation_ends_in_failures_recorded_in_the_cmms_export(tmp_path):
    plant = build_plant()
    until = plant.start_ms + 30 * 24 * HOUR_MS
    events = maintenance_log(plant, until)
    failures = [e for e in events if e.kind == "failure"]
    assert failures
    for event in failures:
        asset = plant.asset(event.asset)
        failure = next(f for f in plant.failures[asset.path] if f.failure_ms == event.time_ms)
        assert event.failure_mode == failure.mode
        middle = (failure.onset_ms + failure.failure_ms) // 2
        assert 0.0 < 1.0 - health(plant, asset, middle) < 1.0
        assert health(plant, asset, event.time_ms + 1) == 0.0
        assert is_down(plant, asset, event.time_ms + 1)
        assert not is_down(plant, asset, failure.repaired_ms)
    path = tmp_path / "cmms.csv"
    assert write_cmms_export(plant, until, path) == len(events)
    rows = list(csv.DictReader(path.open()))
    assert rows[0].keys() == {"asset", "event", "failure_mode", "time_ms"}
    assert len(rows) == len(events)


@functools.cache
def _failures(seeds=(7, 8, 9), days=90):
    out = []
    for seed in seeds:
        plant = build_plant(seed, horizon_ms=days * 24 * HOUR_MS)
        out += [(plant, plant.asset(path), f) for path, fs in plant.failures.items() for f in fs]
    return out


def test_failure_modes_degrade_for_hours_to_weeks_and_rates_differ_by_class():
    failures = _failures()
    assert {f.mode for _, _, f in failures} == {
        "bearing_wear", "imbalance", "cavitation", "seal_leak", "winding",
    }  # fmt: skip
    assert all(f.mode in FAILURE_MODES[a.kind] for _, a, f in failures)
    hours = [(f.failure_ms - f.onset_ms) / HOUR_MS for _, _, f in failures]
    assert min(hours) < 4 and max(hours) > 7 * 24  # sudden ones and slow ones
    per_asset = Counter(a.kind for _, a, _ in failures)
    assets = Counter(a.kind for a in build_plant().assets)
    rate = {kind: per_asset[kind] / assets[kind] for kind in assets}
    assert rate["pump"] > rate["motor"] > rate["press"]
    # Some repairs leave the fault: the next degradation starts at the repair, part-way worn.
    unfixed = [(a, f) for _, a, f in failures if not f.fixed]
    assert unfixed
    repeats = [f for _, _, f in failures if f.residual > 0]
    assert repeats and all(0 < f.residual < 1 for f in repeats)


def _bands(samples, rate_hz=2000.0):
    spectrum = np.abs(np.fft.rfft(samples)) ** 2 / len(samples) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate_hz)
    return {(lo, hi): float(spectrum[(freqs >= lo) & (freqs < hi)].sum())
            for lo, hi in ((0, 50), (50, 200), (500, 1000))}  # fmt: skip


def _late_and_early(plant, asset, failure):
    """A time late in the degradation and one before its onset, both at the same load."""
    late = failure.failure_ms - (failure.failure_ms - failure.onset_ms) // 20
    if load(plant, asset, late) == 0:  # stopped for the block: nothing to compare
        return None
    for back in range(1, 200):
        early = failure.onset_ms - back * 30 * 60_000
        if load(plant, asset, early) == pytest.approx(load(plant, asset, late), abs=0.1) and (
            failure_at(plant, asset, early) is None
        ):
            return late, early
    return None


@pytest.mark.parametrize(
    ("mode", "band"),
    [("imbalance", (0, 50)), ("bearing_wear", (50, 200)), ("cavitation", (500, 1000))],
)
def test_each_mode_has_its_own_vibration_signature(mode, band):
    checked = 0
    for plant, asset, failure in _failures():
        if (
            failure.mode != mode
            or failure.residual
            or load(plant, asset, failure.failure_ms - 1) == 0
        ):
            continue
        times = _late_and_early(plant, asset, failure)
        if times is None:
            continue
        late, early = times
        vib = asset.sensor("vibration")
        worn = _bands(waveform(plant, asset, vib, late, 2000))
        healthy = _bands(waveform(plant, asset, vib, early, 2000))
        assert worn[band] > 3 * healthy[band], (asset.path, failure)
        checked += 1
    assert checked >= 2


def test_pressure_falls_in_a_seal_leak_and_current_ripples_in_a_winding_fault():
    leaks = windings = 0
    for plant, asset, failure in _failures():
        if failure.residual or failure.mode not in ("seal_leak", "winding"):
            continue
        times = _late_and_early(plant, asset, failure)
        if times is None or load(plant, asset, times[0]) == 0:
            continue
        late, early = times
        if failure.mode == "seal_leak":
            pressure = next(s for s in asset.sensors if s.quantity == "pressure")
            drop = (
                value_at(plant, asset, pressure, early)[0]
                - value_at(plant, asset, pressure, late)[0]
            )
            assert drop > 0.15 * pressure.normal_range[1], (asset.path, failure)
            leaks += 1
        elif any(s.quantity == "current" for s in asset.sensors) and not asset.stuck_from_ms:
            current = asset.sensor("motor_current")
            spread = [
                statistics.pstdev(
                    value_at(plant, asset, current, t + k * 100)[0] for k in range(50)
                )
                for t in (late, early)
            ]
            assert spread[0] > 3 * spread[1], (asset.path, failure)
            windings += 1
    assert leaks >= 2 and windings >= 2


def test_load_regimes_and_stops_move_the_signals_without_a_fault():
    plant = build_plant()
    motor = next(a for a in plant.assets if a.kind == "motor" and not a.stuck_from_ms)
    healthy = [
        t for t in range(plant.start_ms, plant.start_ms + 30 * 24 * HOUR_MS, HOUR_MS)
        if failure_at(plant, motor, t) is None
    ]  # fmt: skip
    loads = {round(load(plant, motor, t), 2) for t in healthy}
    assert 0.0 in loads and len(loads) > 20  # planned stops and many load levels
    current = motor.sensor("motor_current")
    low = next(t for t in healthy if 0.5 < load(plant, motor, t) < 0.6)
    high = next(t for t in healthy if load(plant, motor, t) > 0.9)
    stopped = next(t for t in healthy if load(plant, motor, t) == 0.0)
    assert value_at(plant, motor, current, high)[0] > value_at(plant, motor, current, low)[0] + 10
    assert value_at(plant, motor, current, stopped)[0] == 0.0
    assert value_at(plant, motor, motor.sensor("speed"), stopped)[0] == 0.0


def test_temperatures_follow_load_changes_smoothly():
    """No jump a rate-of-change rule would call impossible, at a regime change or a failure."""
    plant = build_plant()
    for asset in plant.assets:
        temp = asset.sensor("bearing_temperature")
        scale = 1.8 if temp.unit == "degF" else 1.0
        block = next(
            t for t in range(plant.start_ms + REGIME_MS, plant.start_ms + 20 * REGIME_MS, REGIME_MS)
            if load(plant, asset, t) != load(plant, asset, t - 1)
        )  # fmt: skip
        values = [value_at(plant, asset, temp, block + k * 1000)[0] for k in range(-5, 30)]
        steps = np.abs(np.diff([v for v in values if v < temp.normal_range[1]]))
        assert steps.max() < 2.0 * scale, asset.path


def test_some_temperature_transmitters_drift():
    plant = build_plant()
    drifting = [s for a in plant.assets for s in a.sensors if s.drift_per_day]
    assert drifting and all(s.quantity == "temperature" for s in drifting)


def test_drifting_device_clock():
    plant = build_plant()
    drifting = next(a for a in plant.assets if a.clock_drift_ppm)
    assert (
        device_time_ms(drifting, plant, plant.start_ms + 10**9) - (plant.start_ms + 10**9)
        == 500_000
    )


def test_unknown_edge_source_is_a_config_error():
    from plantlake.core.config import Settings

    with pytest.raises(ConfigError, match="Unknown edge source"):
        make_source(Settings(), "profibus")


def test_every_machine_runs_in_the_first_two_hours_after_a_launch():
    """A demo or a device test starting now sees live values, never a planned stop's zeros."""
    for seed in range(10):
        plant = build_plant(seed, start_ms=1_795_600_123_456 + seed * 7_919_000)
        for asset in plant.assets:
            for minute in range(0, 120, 7):
                assert load(plant, asset, plant.start_ms + minute * 60_000) > 0, asset.path
