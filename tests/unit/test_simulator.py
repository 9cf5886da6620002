"""The simulated plant is deterministic and carries the faults and ground truth it promises."""

import csv
import math

import pytest

from plantlake.app.edge_sources import make_source
from plantlake.core.errors import ConfigError
from plantlake.core.records import Quality
from plantlake.core.units import quantity_of
from plantlake.simulator.cmms_export import write_cmms_export
from plantlake.simulator.plant import (
    HOUR_MS,
    build_plant,
    device_time_ms,
    health,
    maintenance_log,
    value_at,
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
    first = failures[0]
    asset = plant.asset(first.asset)
    assert health(plant, asset, first.time_ms - plant.degradation_ms // 2) == pytest.approx(
        0.5, abs=0.01
    )
    assert health(plant, asset, first.time_ms + 1) == 0.0
    path = tmp_path / "cmms.csv"
    assert write_cmms_export(plant, until, path) == len(events)
    rows = list(csv.DictReader(path.open()))
    assert rows[0].keys() == {"asset", "event", "failure_mode", "time_ms"}
    assert len(rows) == len(events)


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
