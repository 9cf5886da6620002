"""reference.asset_registry rows built from the simulated plant."""

from collections import defaultdict

from plantlake.core.registry_entries import entry_rows
from plantlake.ingest.filters import (
    default_window_features,
    load_filter_config,
    window_feature_names,
)
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import REMOUNTS, plant_registry_entries


def _intervals(rows):
    by_key = defaultdict(list)
    for row in rows:
        by_key[(row["asset"], row["sensor"])].append(row)
    return by_key


def test_every_plant_sensor_and_window_feature_is_registered_with_its_quantity():
    plant = build_plant(7)
    rows = entry_rows(plant_registry_entries(plant, default_window_features()))
    quantities = {(r["asset"], r["sensor"]): r["quantity"] for r in rows}
    for asset in plant.assets:
        for sensor in asset.sensors:
            assert quantities[(asset.path, sensor.name)] == sensor.quantity
            if sensor.rate_hz:
                assert quantities[(asset.path, f"{sensor.name}.rms")] == "vibration"
                assert quantities[(asset.path, f"{sensor.name}.peak")] == "vibration"
                assert quantities[(asset.path, f"{sensor.name}.crest")] == "ratio"
                assert quantities[(asset.path, f"{sensor.name}.band_0_50")] == "energy"
    assert all(r["site"] == "plant1" and r["line"] in r["asset"] for r in rows)


def test_feature_names_follow_the_edge_filter_config():
    names = window_feature_names(load_filter_config())
    assert names[:3] == ("rms", "peak", "crest")
    assert "band_500_1000" in names


def test_intervals_per_sensor_never_overlap_and_only_the_last_is_open():
    for rows in _intervals(
        entry_rows(plant_registry_entries(build_plant(7), default_window_features()))
    ).values():
        rows = sorted(rows, key=lambda r: r["valid_from"])
        for earlier, later in zip(rows, rows[1:], strict=False):
            assert earlier["valid_to"] is not None
            assert earlier["valid_to"] <= later["valid_from"]
        assert rows[-1]["valid_to"] is None
        assert all(r["valid_to"] is None or r["valid_from"] < r["valid_to"] for r in rows)


def test_remount_gives_adjacent_intervals_with_a_class_change_for_sensor_and_features():
    plant = build_plant(7)
    remount = REMOUNTS[0]
    by_key = _intervals(entry_rows(plant_registry_entries(plant, default_window_features())))
    for sensor in ("vibration", "vibration.rms", "vibration.crest"):
        before, after = sorted(by_key[(remount.asset, sensor)], key=lambda r: r["valid_from"])
        assert before["valid_to"] == after["valid_from"]
        assert (before["asset_class"], after["asset_class"]) == ("motor", "pump")
        assert after["valid_from"].timestamp() * 1000 == plant.start_ms + (
            remount.after.total_seconds() * 1000
        )
