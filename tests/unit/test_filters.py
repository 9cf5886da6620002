import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantlake.core.errors import ConfigError
from plantlake.core.records import Quality, Reading
from plantlake.ingest.edge_filter import EdgeFilter
from plantlake.ingest.filters import (
    Deadband,
    DeadbandState,
    FilterConfigError,
    deadband_passes,
    load_filter_config,
    parse_filter_config,
    window_features,
)

values = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=300
)


@given(values, st.floats(min_value=0, max_value=1e3, allow_nan=False))
@settings(max_examples=200)
def test_absolute_deadband_reconstruction_error_stays_within_the_band(series, band):
    spec = Deadband(value=band, max_silence_ms=10**12)
    state = DeadbandState()
    held = None
    for t, v in enumerate(series):
        if deadband_passes(spec, state, v, t, True):
            held = v
        assert abs(v - held) <= band


@given(values, st.floats(min_value=0, max_value=50, allow_nan=False))
@settings(max_examples=200)
def test_percent_deadband_error_is_within_percent_of_the_held_value(series, pct):
    spec = Deadband(value=pct, mode="percent", max_silence_ms=10**12)
    state = DeadbandState()
    held = None
    for t, v in enumerate(series):
        if deadband_passes(spec, state, v, t, True):
            held = v
        assert abs(v - held) <= abs(held) * pct / 100 + 1e-9


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=2, max_value=500))
def test_heartbeat_bounds_the_silence(max_silence, steps):
    spec = Deadband(value=1e9, max_silence_ms=max_silence)
    state = DeadbandState()
    sent = [t for t in range(0, steps * 100, 100) if deadband_passes(spec, state, 1.0, t, True)]
    assert sent[0] == 0
    # Values arrive every 100 ms, so the heartbeat goes out at the first one past the limit.
    assert all(b - a < max_silence + 100 for a, b in zip(sent, sent[1:], strict=False))


def test_quality_change_and_nan_always_pass():
    spec = Deadband(value=100.0)
    state = DeadbandState()
    assert deadband_passes(spec, state, 1.0, 0, True)
    assert not deadband_passes(spec, state, 2.0, 1, True)
    assert deadband_passes(spec, state, 2.0, 2, False)  # went Bad
    assert deadband_passes(spec, state, math.nan, 3, False)  # NaN after a number
    assert not deadband_passes(spec, state, math.nan, 4, False)
    assert deadband_passes(spec, state, 5.0, 5, True)


def test_window_features_of_a_pure_tone():
    rate = 2000.0
    t = np.arange(2000) / rate
    tone = 3.0 * np.sin(2 * np.pi * 157.0 * t)
    f = window_features(tone, rate, [(0, 50), (50, 200), (200, 500), (500, 1000)])
    assert f["rms"] == pytest.approx(3.0 / math.sqrt(2), rel=1e-3)
    assert f["peak"] == pytest.approx(3.0, rel=1e-3)
    assert f["crest"] == pytest.approx(math.sqrt(2), rel=1e-3)
    # Parseval: the bands covering 0..Nyquist hold all the mean-square energy, here in one band.
    assert f["band_50_200"] == pytest.approx(f["rms"] ** 2, rel=1e-3)
    assert f["band_0_50"] + f["band_200_500"] + f["band_500_1000"] < 1e-6


def test_shipped_config_parses_and_every_simulated_quantity_has_a_class():
    config = load_filter_config()
    for quantity in ("temperature", "pressure", "flow", "current", "speed", "state", "vibration"):
        assert config.class_for(quantity) is not None, quantity


def test_config_errors_name_the_entry():
    with pytest.raises(FilterConfigError, match="classes.x: unknown keys"):
        parse_filter_config({"version": "1", "classes": {"x": {"quantities": ["a"], "typo": 1}}})
    with pytest.raises(FilterConfigError, match="already in another class"):
        parse_filter_config(
            {"version": "1", "classes": {"a": {"quantities": ["t"]}, "b": {"quantities": ["t"]}}}
        )
    with pytest.raises(FilterConfigError, match="passthrough needs a window"):
        parse_filter_config(
            {"version": "1", "classes": {"a": {"quantities": ["v"], "passthrough": {}}}}
        )


def test_unreadable_config_file_is_a_config_error(tmp_path):
    bad = tmp_path / "f.yaml"
    bad.write_text("version: 1\nclasses: [")
    with pytest.raises(ConfigError, match=str(bad)):
        load_filter_config(bad)


def _reading(sensor="bearing_temperature", unit="degC", value=50.0, t=0):
    return Reading("p/l/a", sensor, value, unit, Quality.GOOD, t, t, "test", "n")


def test_edge_filter_stamps_version_and_thins_slow_signals():
    f = EdgeFilter(load_filter_config())
    out = [f.reading(_reading(value=50.0 + 0.01 * i, t=i * 1000)) for i in range(30)]
    passed = [r for r in out if r is not None]
    assert len(passed) == 1 and passed[0].filter_version == f.config.version
    assert f.report()["temperature"]["reduction"] == pytest.approx(1 - 1 / 30)


def test_unknown_units_are_never_thinned():
    f = EdgeFilter(load_filter_config())
    assert all(f.reading(_reading(unit="bogus", t=i)) for i in range(5))


def test_vibration_becomes_window_features_and_raw_streams_after_a_threshold():
    f = EdgeFilter(load_filter_config())
    rate = 2000.0
    t = np.arange(4000) / rate
    quiet = 1.0 * np.sin(2 * np.pi * 25 * t)
    features, raw = f.waveform(_reading("vibration", "mm/s", t=0), quiet, rate)
    assert raw == []
    assert {r.sensor for r in features} >= {
        "vibration.rms",
        "vibration.crest",
        "vibration.band_0_50",
    }
    assert len(features) == 2 * 7  # two 1 s windows, 7 features each
    loud = 12.0 * np.sin(2 * np.pi * 157 * t)
    features, raw = f.waveform(_reading("vibration", "mm/s", t=2000), loud, rate)
    assert len(raw) == 4000 and raw[0].event_time_ms == 2000
    # Still inside the passthrough window: raw keeps flowing even once quiet again.
    _, raw_after = f.waveform(_reading("vibration", "mm/s", t=4000), quiet, rate)
    assert len(raw_after) == 4000
