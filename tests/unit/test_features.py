"""Feature maths of gold.features: windows over event time, knowability, maintenance clocks."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantlake.pipelines.transforms.features import (
    FEATURE_COLUMNS,
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
        st.tuples(st.sampled_from(["temperature", "vibration", "current"]),
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
        for name in ("temperature_mean_1h", "vibration_rms_max_1h", "current_std_1h"):
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
