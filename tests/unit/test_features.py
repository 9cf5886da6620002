"""Feature maths of gold.features: windows over event time, knowability, maintenance clocks."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantlake.pipelines.transforms.features import (
    FEATURE_COLUMNS,
    FEATURE_DOCS,
    HOUR_MS,
    MINUTE_MS,
    OUTPUT_COLUMNS,
    asset_features,
)

STEP = 5 * MINUTE_MS
T0 = 1_767_225_600_000


# The quantity of the edge's window features, by feature (the rest are a sensor's own readings).
EDGE_QUANTITIES = {"crest": "ratio", "rms": "vibration", "peak": "vibration"}


def readings(rows):
    """rows: (quantity, value, event_time_ms[, arrived_ms]); a quantity "vibration.<feature>" is
    that window feature of the vibration sensor."""
    frame = pd.DataFrame(
        [(q, v, t, r[0] if r else t + 1000) for q, v, t, *r in rows],
        columns=["sensor", "value", "event_time_ms", "arrived_ms"],
    )
    feature = frame["sensor"].str.partition(".")[2]
    quantity = feature.map(lambda f: EDGE_QUANTITIES.get(f, "energy") if f else None)
    frame["quantity"] = quantity.fillna(frame["sensor"])
    return frame.assign(asset="plant1/line1/pump-02", asset_class="pump")


def steady(hours=30, every=MINUTE_MS):
    rows = []
    for t in range(T0, T0 + hours * HOUR_MS, every):
        rows += [("temperature", 55.0, t), ("vibration", 2.0, t), ("current", 42.0, t)]
    return rows


def test_columns_types_and_grid():
    out = asset_features(readings(steady(hours=2)))
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert (out["feature_time_ms"] % STEP == 0).all()
    assert out["feature_time_ms"].is_monotonic_increasing
    assert all(out[c].dtype == "float64" for c in FEATURE_COLUMNS)
    # A row at t summarises readings before t: the first row is the end of the first bucket.
    assert out["feature_time_ms"].iloc[0] == T0 + STEP
    assert (out["readings"] == 15).all()  # 5 minutes of 3 sensors


def test_means_weight_readings_and_windows_respect_horizons():
    rows = steady(hours=26)
    # The last hour runs hot: the 1 h mean sees only it, the 24 h mean dilutes it.
    last = T0 + 26 * HOUR_MS
    rows = [(q, 65.0 if q == "temperature" and t >= last - HOUR_MS else v, t) for q, v, t in rows]
    out = asset_features(readings(rows)).set_index("feature_time_ms").loc[last]
    assert out["temperature_mean_1h"] == pytest.approx(65.0)
    assert out["temperature_mean_15m"] == pytest.approx(65.0)
    assert out["temperature_mean_24h"] == pytest.approx(55.0 + 10.0 / 24, rel=1e-9)
    assert out["current_std_1h"] == pytest.approx(0.0)
    assert out["pressure_mean_1h"] != out["pressure_mean_1h"]  # a pump without pressure: NaN


def test_rate_of_change_is_per_hour_and_trend_follows_vibration():
    rows = [("temperature", 50.0 + 3.0 * (t - T0) / HOUR_MS, t) for t in range(T0, T0 + 3 * HOUR_MS, MINUTE_MS)]  # fmt: skip
    rows += [("vibration", 1.0 + 0.5 * (t - T0) / HOUR_MS, t) for t in range(T0, T0 + 3 * HOUR_MS, MINUTE_MS)]  # fmt: skip
    out = asset_features(readings(rows)).iloc[-1]
    assert out["temperature_rate_1h"] == pytest.approx(3.0, rel=1e-6)
    assert out["vibration_rms_trend_24h"] == pytest.approx(0.5, rel=1e-6)
    assert out["temperature_vibration_corr_24h"] == pytest.approx(1.0)


def test_a_late_reading_moves_knowable_at_of_every_row_it_feeds():
    rows = steady(hours=3)
    late_arrival = T0 + 10 * HOUR_MS
    rows.append(("temperature", 55.0, T0 + HOUR_MS + 30_000, late_arrival))
    out = asset_features(readings(rows)).set_index("feature_time_ms")
    assert (out.loc[: T0 + HOUR_MS, "knowable_at_ms"] < late_arrival).all()
    assert (out.loc[T0 + HOUR_MS + STEP :, "knowable_at_ms"] == late_arrival).all()
    assert (out["knowable_at_ms"] >= out.index).all()


def test_hours_and_cycles_since_maintenance():
    rows = []
    for t in range(T0, T0 + 6 * HOUR_MS, MINUTE_MS):
        hour = (t - T0) // HOUR_MS
        rows.append(("state", 0.0 if hour in (1, 4) else 1.0, t))  # stops in hours 1 and 4
    repair = T0 + 3 * HOUR_MS
    out = asset_features(readings(rows), maintenance_ms=np.array([repair])).set_index(
        "feature_time_ms"
    )
    assert np.isnan(out.loc[T0 + HOUR_MS, "hours_since_maintenance"])
    assert out.loc[repair + 2 * HOUR_MS, "hours_since_maintenance"] == pytest.approx(2.0)
    assert out.loc[repair - STEP, "cycles_since_maintenance"] == 1.0  # restart after hour 1
    assert out.loc[repair + STEP, "cycles_since_maintenance"] == 0.0
    assert out.iloc[-1]["cycles_since_maintenance"] == 1.0  # restart after hour 4


def test_emit_from_gives_the_same_rows_as_a_full_recompute():
    rows = steady(hours=30, every=2 * MINUTE_MS)
    full = asset_features(readings(rows))
    since = T0 + 27 * HOUR_MS
    part = asset_features(readings(rows), emit_from_ms=since)
    expected = full[full["feature_time_ms"] >= since].reset_index(drop=True)
    pd.testing.assert_frame_equal(part.reset_index(drop=True), expected)


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["temperature", "vibration", "current", "pressure", "flow",
                                   "state", "vibration.band_50_200"]),
                  st.floats(-50, 200), st.integers(0, 6 * HOUR_MS)),
        min_size=1, max_size=120,
    )
)  # fmt: skip
def test_a_row_never_uses_a_reading_from_its_own_time_or_later(rows):
    frame = readings([(q, v, T0 + t) for q, v, t in rows])
    out = asset_features(frame)
    for row in out.itertuples():
        before = frame[frame["event_time_ms"] < row.feature_time_ms]
        # Changing every later reading must not change the row.
        changed = pd.concat(
            [before, frame[frame["event_time_ms"] >= row.feature_time_ms].assign(value=1e6)]
        )
        again = asset_features(changed).set_index("feature_time_ms").loc[row.feature_time_ms]
        for name in FEATURE_COLUMNS:
            a, b = getattr(row, name), again[name]
            assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b)


def test_edge_window_features_feed_their_own_columns_and_not_the_protocol_rms():
    rows = steady(hours=2)
    last = T0 + 2 * HOUR_MS
    for t in range(T0, last, 10_000):  # the DAQ's windows, a reading every 10 s here
        rows += [("vibration.crest", 3.0, t), ("vibration.band_50_200", 0.5, t),
                 ("vibration.rms", 9.0, t), ("vibration.peak", 27.0, t)]  # fmt: skip
    out = asset_features(readings(rows)).set_index("feature_time_ms").loc[last]
    assert out["vibration_crest_mean_1h"] == pytest.approx(3.0)
    assert out["vibration_band_50_200_mean_1h"] == pytest.approx(0.5)
    assert np.isnan(out["vibration_band_0_50_mean_1h"])  # no such window feature was sent
    # The window RMS and peak are not the protocol's vibration reading: the mean stays at 2.
    assert out["vibration_rms_mean_1h"] == pytest.approx(2.0)


def test_gold_uses_the_bands_the_shipped_edge_filters_compute():
    from plantlake.core.contracts import EDGE_FEATURES_IN_GOLD
    from plantlake.ingest.filters import default_window_features

    bands = {f for f in default_window_features() if f.startswith("band_")}
    assert {f for f in EDGE_FEATURES_IN_GOLD if f.startswith("band_")} == bands
    assert "crest" in default_window_features()


def test_every_documented_feature_is_a_column():
    assert set(FEATURE_DOCS) <= set(FEATURE_COLUMNS)


def pump(hours, *, pressure, flow, current):
    """A pump read every minute; each signal a function of the hours since T0."""
    rows = []
    for t in range(T0, T0 + hours * HOUR_MS, MINUTE_MS):
        h = (t - T0) / HOUR_MS
        rows += [("pressure", pressure(h), t), ("flow", flow(h), t), ("current", current(h), t)]
    return asset_features(readings(rows)).set_index("feature_time_ms")


def test_a_slow_pressure_decay_is_a_trend_on_both_horizons_and_a_load_step_is_not():
    end = T0 + 48 * HOUR_MS
    # A seal leak: pressure falls 0.02 bar/h for two days, at unchanged flow and current.
    leak = pump(48, pressure=lambda h: 6.0 - 0.02 * h, flow=lambda h: 120.0, current=lambda h: 42.0)
    assert leak.loc[end, "pressure_trend_24h"] == pytest.approx(-0.02, rel=1e-6)
    assert leak.loc[end, "pressure_trend_6h"] == pytest.approx(-0.02, rel=1e-6)
    # A load step 18 h before the end drops pressure by as much as the leak does in 24 h, with
    # flow and current. The 24 h trend alone cannot tell it from the leak (a step's slope is as
    # steep as a ramp's), but the 6 h trend has forgotten the step: a drift shows on both
    # horizons, a step on the long one only.
    load = 0.92  # 6.0 * 0.08 = 0.48 bar = 24 h * 0.02 bar/h

    def scale(h):
        return 1.0 if h < 30 else load

    step = pump(48, pressure=lambda h: 6.0 * scale(h), flow=lambda h: 120.0 * scale(h),
                current=lambda h: 42.0 * scale(h))  # fmt: skip
    assert step.loc[end, "pressure_mean_1h"] == pytest.approx(6.0 - 0.48)
    assert step.loc[end, "pressure_trend_24h"] == pytest.approx(-0.02, rel=0.25)
    assert step.loc[end, "pressure_trend_6h"] == pytest.approx(0.0, abs=1e-9)
    # Pressure per flow: unchanged by the load step, falling with the leak.
    step_ratio, leak_ratio = step["pressure_per_flow_1h"], leak["pressure_per_flow_1h"]
    assert step_ratio.loc[T0 + HOUR_MS :].to_numpy() == pytest.approx(6.0 / 120.0)
    assert leak_ratio.loc[end] == pytest.approx(leak.loc[end, "pressure_mean_1h"] / 120.0)
    assert leak_ratio.loc[end - 24 * HOUR_MS] - leak_ratio.loc[end] == pytest.approx(0.48 / 120.0)


def motor(current, temperature, hours=4):
    rows = []
    for t in range(T0, T0 + hours * HOUR_MS, MINUTE_MS):
        h = (t - T0) / HOUR_MS
        amps = current(h)
        rows += [("current", amps, t), ("temperature", temperature(h, amps), t),
                 ("vibration", 0.05 * amps, t)]  # fmt: skip
    return asset_features(readings(rows)).set_index("feature_time_ms")


def test_temperature_per_amp_stays_with_a_load_change_and_rises_with_heating_at_the_same_load():
    more_load = motor(lambda h: 40.0 if h < 2 else 60.0, lambda h, amps: 20.0 + 0.8 * amps)
    heating = motor(lambda h: 40.0, lambda h, amps: 52.0 if h < 2 else 62.0)
    before, after = T0 + 2 * HOUR_MS, T0 + 4 * HOUR_MS
    # Temperature alone rises in both, and more with the load change than with the fault.
    rise_load = (
        more_load.loc[after, "temperature_mean_1h"] - more_load.loc[before, "temperature_mean_1h"]
    )
    rise_fault = (
        heating.loc[after, "temperature_mean_1h"] - heating.loc[before, "temperature_mean_1h"]
    )
    assert rise_load > rise_fault > 0
    # Per amp, only the fault moves it.
    after_an_hour = more_load.loc[T0 + HOUR_MS :]
    assert after_an_hour["temperature_rise_per_amp_1h"].to_numpy() == pytest.approx(0.8)
    assert after_an_hour["vibration_rms_per_amp_1h"].to_numpy() == pytest.approx(0.05)
    assert heating.loc[before, "temperature_rise_per_amp_1h"] == pytest.approx(0.8)
    assert heating.loc[after, "temperature_rise_per_amp_1h"] == pytest.approx(42.0 / 40.0)


@pytest.mark.parametrize("amps", [0.0, 0.5])
def test_per_load_features_are_null_when_the_machine_is_stopped_or_idle(amps):
    rows = []
    for t in range(T0, T0 + 2 * HOUR_MS, MINUTE_MS):
        rows += [("current", amps, t), ("temperature", 24.0, t), ("vibration", 0.1, t),
                 ("pressure", 0.3, t), ("flow", amps, t), ("state", 0.0, t)]  # fmt: skip
    out = asset_features(readings(rows)).iloc[-1]
    for name in ("temperature_rise_per_amp_1h", "vibration_rms_per_amp_1h", "pressure_per_flow_1h"):
        assert np.isnan(out[name]), name
    assert out["temperature_mean_1h"] == pytest.approx(24.0)  # the raw signals are still there
    assert out["running_share_1h"] == 0.0


def test_band_trends_follow_rising_band_energy():
    rows = steady(hours=30)
    for t in range(T0, T0 + 30 * HOUR_MS, MINUTE_MS):
        h = (t - T0) / HOUR_MS
        rows += [("vibration.band_50_200", 0.1 + 0.02 * h, t), ("vibration.band_500_1000", 0.05, t)]
    out = asset_features(readings(rows)).iloc[-1]
    assert out["vibration_band_50_200_trend_24h"] == pytest.approx(0.02, rel=1e-6)
    assert out["vibration_band_500_1000_trend_24h"] == pytest.approx(0.0, abs=1e-9)
    assert out["vibration_rms_trend_6h"] == pytest.approx(0.0, abs=1e-9)  # the RMS stayed at 2


def test_running_share_is_the_fraction_of_the_hour_the_state_said_running():
    rows = []
    for t in range(T0, T0 + 3 * HOUR_MS, 5 * MINUTE_MS):  # the edge's 5-minute state heartbeat
        stopped = T0 + HOUR_MS <= t < T0 + 90 * MINUTE_MS
        rows += [("state", 0.0 if stopped else 1.0, t), ("current", 0.0 if stopped else 42.0, t)]
    out = asset_features(readings(rows)).set_index("feature_time_ms")
    assert out.loc[T0 + HOUR_MS, "running_share_1h"] == 1.0
    assert out.loc[T0 + 2 * HOUR_MS, "running_share_1h"] == pytest.approx(0.5)
    assert out.loc[T0 + 3 * HOUR_MS, "running_share_1h"] == 1.0
    # An asset without a state sensor has no running share (not "never running").
    assert asset_features(readings(steady(hours=2)))["running_share_1h"].isna().all()
