"""The historian backfill's edge window features equal what the live edge computes."""

from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantlake.core.contracts import record_errors
from plantlake.core.errors import ConfigError
from plantlake.core.records import Quality, Reading
from plantlake.ingest.edge_filter import EdgeFilter
from plantlake.ingest.filters import (
    Passthrough,
    Window,
    load_filter_config,
    window_feature_names,
    window_features,
)
from plantlake.simulator.historian import HISTORIAN, historian_features
from plantlake.simulator.historian_features import feature_channels, window_features_batch
from plantlake.simulator.plant import HOUR_MS, build_plant, waveform

PLANT = build_plant(7, start_ms=1_767_225_600_000)
FILTERS = load_filter_config()
MINUTE = 60_000
HIGH_RATE = [(a, s) for a in PLANT.assets for s in a.sensors if s.rate_hz]
BANDS = FILTERS.class_for("vibration").window.bands_hz


def _features(start_ms, end_ms, step_ms, assets=None, filters=FILTERS):
    return list(historian_features(PLANT, filters, start_ms=start_ms, end_ms=end_ms,
                                   step_ms=step_ms, assets=assets))  # fmt: skip


def _with_vibration(window=None, passthrough=None, version=None):
    """The shipped config with its vibration class's window or passthrough replaced."""
    classes = tuple(
        replace(k, window=window or k.window, passthrough=passthrough or k.passthrough)
        if k.name == "vibration" else k
        for k in FILTERS.classes
    )  # fmt: skip
    return replace(FILTERS, classes=classes, version=version or FILTERS.version)


def _live(asset, sensor, t, filters=FILTERS):
    """What the live DAQ source and edge filter send for a one-second block starting at `t`."""
    template = Reading(asset.path, sensor.name, None, sensor.unit, Quality.GOOD, t, t + 5,
                       "daq", "daq")  # fmt: skip
    block = waveform(PLANT, asset, sensor, t, int(sensor.rate_hz))
    return EdgeFilter(filters).waveform(template, block, sensor.rate_hz)


def _lake_fields(r):
    """What the lake keeps of a feature apart from where and when it was received."""
    return (r.asset, r.sensor, r.value, r.unit, r.quality, r.event_time_ms, r.sequence,
            r.filter_version)  # fmt: skip


windows = st.integers(min_value=1, max_value=40).flatmap(
    lambda rows: st.integers(min_value=1, max_value=600).flatmap(
        lambda n: st.lists(
            st.lists(
                st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), min_size=n, max_size=n
            ),
            min_size=rows,
            max_size=rows,
        )
    )
)


@given(windows, st.sampled_from([1000.0, 2000.0, 25_600.0]))
@settings(max_examples=150, deadline=None)
def test_batched_features_equal_window_features_value_for_value(rows, rate_hz):
    batch = np.array(rows, dtype=float)
    batch[0] = 0.0  # a silent window: crest factor 0, not a division by zero
    got = window_features_batch(batch, rate_hz, BANDS)
    for k, row in enumerate(batch):
        expected = window_features(row, rate_hz, BANDS)
        assert list(got) == list(expected)
        assert {name: float(column[k]) for name, column in got.items()} == expected


def test_batched_features_equal_window_features_on_simulated_waveforms():
    asset, sensor = HIGH_RATE[0]
    times = [PLANT.start_ms + k * 7 * HOUR_MS for k in range(100)]
    batch = np.stack([waveform(PLANT, asset, sensor, t, 2000) for t in times])
    got = window_features_batch(batch, sensor.rate_hz, BANDS)
    for k, row in enumerate(batch):
        assert {n: float(c[k]) for n, c in got.items()} == window_features(row, 2000.0, BANDS)


@pytest.mark.parametrize("hours", [0, 60, 187, 189, 190, 400])  # pump-02 fails at 189.3 h
def test_backfill_features_equal_the_live_edge_filters_for_every_high_rate_sensor(hours):
    t = PLANT.start_ms + hours * HOUR_MS
    backfilled = _features(t, t + 1, MINUTE)
    for asset, sensor in HIGH_RATE:
        live, raw = _live(asset, sensor, t)
        assert raw == []
        mine = [r for r in backfilled if r.asset == asset.path
                and r.sensor.startswith(f"{sensor.name}.")]  # fmt: skip
        assert [_lake_fields(r) for r in mine] == [_lake_fields(r) for r in live]
        assert {(r.receive_time_ms, r.source_protocol, r.source_node) for r in mine} == {
            (t, HISTORIAN, HISTORIAN)
        }


def test_feature_names_units_and_version_are_the_edges():
    (asset, sensor), t = HIGH_RATE[0], PLANT.start_ms
    features = _features(t, t + 1, MINUTE, assets=[asset.path])
    names = window_feature_names(FILTERS)
    assert [r.sensor for r in features] == [f"{sensor.name}.{n}" for n in names]
    units = {r.sensor.split(".")[1]: r.unit for r in features}
    assert units == {n: sensor.unit if n in ("rms", "peak") else None for n in names}
    assert {r.filter_version for r in features} == {FILTERS.version}


def test_the_filter_config_decides_window_length_bands_and_version():
    window = Window(seconds=0.25, bands_hz=((0.0, 100.0), (100.0, 1000.0)))
    filters = _with_vibration(window=window, version="test-7")
    (asset, sensor), t = HIGH_RATE[3], PLANT.start_ms + 3 * HOUR_MS
    live, _ = _live(asset, sensor, t, filters)
    first_window = [r for r in live if r.event_time_ms == t]  # the block holds four windows
    mine = _features(t, t + 1, MINUTE, assets=[asset.path], filters=filters)
    assert [_lake_fields(r) for r in mine] == [_lake_fields(r) for r in first_window]
    assert [r.sensor for r in mine] == [f"{sensor.name}.{n}" for n in
                                        ("rms", "peak", "crest", "band_0_100", "band_100_1000")]  # fmt: skip
    assert {r.filter_version for r in mine} == {"test-7"}
    (channel, *_) = feature_channels([asset], filters)
    assert channel.samples == 500 and len(channel.features) == 5


def test_no_raw_samples_even_when_the_live_edge_would_pass_them_through():
    filters = _with_vibration(passthrough=Passthrough(feature="rms", above=0.0, minutes=60))
    (asset, sensor), t = HIGH_RATE[0], PLANT.start_ms
    _, raw = _live(asset, sensor, t, filters)
    assert len(raw) == 2000  # live, every sample would go to telemetry
    features = _features(t, t + 10 * MINUTE, MINUTE, assets=[asset.path], filters=filters)
    names = {f"{sensor.name}.{n}" for n in window_feature_names(filters)}
    assert {r.sensor for r in features} == names
    assert {r.sequence for r in features} == {None}


def test_feature_count_per_step_is_high_rate_sensors_times_window_features():
    start, steps = PLANT.start_ms + 5 * HOUR_MS, 20
    features = _features(start, start + steps * MINUTE, MINUTE)
    per_step = len(HIGH_RATE) * len(window_feature_names(FILTERS))
    assert len(HIGH_RATE) == 8 and per_step == 56
    assert len(features) == steps * per_step
    counts = Counter(r.receive_time_ms for r in features)
    assert sorted(counts) == [start + k * MINUTE for k in range(steps)]
    assert set(counts.values()) == {per_step}
    assert len({(r.asset, r.sensor, r.event_time_ms) for r in features}) == len(features)


def test_each_feature_comes_in_time_order_across_chunks():
    asset, _ = HIGH_RATE[1]
    start, steps = PLANT.start_ms, 600  # more steps than one chunk of windows
    features = _features(start, start + steps * 1000, 1000, assets=[asset.path])
    times = defaultdict(list)
    for r in features:
        times[r.sensor].append(r.event_time_ms)
    expected = [start + k * 1000 for k in range(steps)]
    assert len(times) == len(window_feature_names(FILTERS))
    assert all(t == expected for t in times.values())


def test_event_time_is_the_daq_clock_even_on_a_drifting_device():
    (asset,) = [a for a in PLANT.assets if a.clock_drift_ppm]
    t = PLANT.start_ms + 10 * 24 * HOUR_MS
    features = _features(t, t + 1, MINUTE, assets=[asset.path])
    live, _ = _live(asset, asset.sensor("vibration"), t)
    assert features and {r.event_time_ms for r in features} == {t}
    assert [_lake_fields(r) for r in features] == [_lake_fields(r) for r in live]


def test_assets_without_high_rate_sensors_have_no_features_and_records_keep_the_contract():
    (press, *_) = [a for a in PLANT.assets if a.kind == "press"]
    t = PLANT.start_ms
    assert _features(t, t + 5 * MINUTE, MINUTE, assets=[press.path]) == []
    for r in _features(t, t + 1, MINUTE):
        assert record_errors(orjson.loads(orjson.dumps(r.to_record()))) == []


def test_unknown_assets_and_bad_steps_are_refused():
    with pytest.raises(ConfigError, match="no asset 'plant1/line9/pump-99'"):
        historian_features(PLANT, FILTERS, start_ms=0, end_ms=1, step_ms=1,
                           assets=["plant1/line9/pump-99"])  # fmt: skip
    with pytest.raises(ConfigError, match="positive"):
        historian_features(PLANT, FILTERS, start_ms=0, end_ms=1, step_ms=0)
