"""Feature maths of gold.features: rolling statistics per asset over event time (gold layer, pure).

One function, `asset_features`, turns one asset's Good silver readings (and its maintenance
events) into feature rows on a regular grid. The batch feature job, the streaming scoring job
and the training-set builder all get their rows from it, so training and serving cannot
disagree on what a feature means.

A row stamped `feature_time_ms = t` uses only readings with event time before t, and says when
it became *knowable*: `knowable_at_ms`, the latest arrival (bronze ingest time) of any reading it
used, and never before t. A reading that arrives late changes the rows it falls into and moves
their `knowable_at_ms` later, which is what lets a training set refuse values that had not
arrived by its label time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from plantlake.core.contracts import EDGE_FEATURES_IN_GOLD, FEATURE_COLUMNS

FEATURE_VERSION = "2026-11-27.2"
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
HORIZONS_MS: Mapping[str, int] = {
    "15m": 15 * MINUTE_MS, "1h": HOUR_MS, "6h": 6 * HOUR_MS, "24h": 24 * HOUR_MS,
}  # fmt: skip
# What a temperature rise is measured from. The losses of a load heat a machine above its
# surroundings, so the rise, not the absolute temperature, is what scales with load; the lake
# has no ambient sensor, and 20 degC is a plant hall's usual air. A wrong reference adds
# (error / current) to temperature_rise_per_amp_1h, small against a fault's change at full load.
AMBIENT_DEGC = 20.0
# At or below these a machine is stopped or idling: a value per unit of load would divide by
# noise around zero.
MIN_LOAD_CURRENT_A = 1.0
MIN_LOAD_FLOW_M3H = 1.0

# Which silver quantity feeds which signal group (one asset has at most one sensor of each);
# edge window features (sensor "vibration.crest") feed the group of their feature instead.
SIGNALS: Mapping[str, str] = {
    "vibration": "vibration_rms",
    "temperature": "temperature",
    "current": "current",
    "pressure": "pressure",
    "flow": "flow",
    "state": "running",
}

FEATURE_DOCS: Mapping[str, str] = {
    "vibration_rms_trend_24h": "least-squares slope of 5-minute vibration RMS means, mm/s per hour",
    "temperature_rate_1h": "least-squares slope of 5-minute temperature means, degC per hour",
    "current_std_1h": "sample standard deviation of every current reading in the hour, A",
    "temperature_vibration_corr_24h": "Pearson correlation of 5-minute temperature and vibration means",
    "hours_since_maintenance": "since the last repair or inspection (null before the first one)",
    "cycles_since_maintenance": "off-to-on transitions of the running state since then (presses)",
    "vibration_crest_mean_1h": "mean crest factor (peak / RMS) of the edge's 1 s vibration windows",
    **{
        f"vibration_{f}_mean_1h": f"mean FFT energy of the edge's 1 s vibration windows in {f[5:]} Hz"
        for f in EDGE_FEATURES_IN_GOLD
        if f.startswith("band_")
    },
    # Feature version 2026-11-27.2: what tells a fault from a change of load or a stop.
    "vibration_rms_trend_6h": "as vibration_rms_trend_24h over 6 h, mm/s per hour",
    "temperature_trend_24h": "least-squares slope of 5-minute temperature means over 24 h, degC per hour",
    "pressure_trend_6h": "least-squares slope of 5-minute pressure means over 6 h, bar per hour",
    "pressure_trend_24h": "least-squares slope of 5-minute pressure means over 24 h, bar per hour",
    "vibration_band_50_200_trend_24h": "least-squares slope of 5-minute means of the 50-200 Hz "
    "band energy over 24 h, (mm/s)^2 per hour",
    "vibration_band_500_1000_trend_24h": "least-squares slope of 5-minute means of the 500-1000 Hz "
    "band energy over 24 h, (mm/s)^2 per hour",
    "flow_mean_1h": "mean of every flow reading in the hour, m3/h",
    "temperature_rise_per_amp_1h": f"(temperature_mean_1h - {AMBIENT_DEGC:g} degC ambient) / "
    f"current_mean_1h, degC per A; null at or below {MIN_LOAD_CURRENT_A:g} A",
    "vibration_rms_per_amp_1h": "vibration_rms_mean_1h / current_mean_1h, mm/s per A; "
    f"null at or below {MIN_LOAD_CURRENT_A:g} A",
    "pressure_per_flow_1h": "pressure_mean_1h / flow_mean_1h, bar per m3/h; "
    f"null at or below {MIN_LOAD_FLOW_M3H:g} m3/h",
    "running_share_1h": "mean of the running state readings in the hour, 0 (stopped) to 1 "
    "(null without a state sensor)",
}
KEY_COLUMNS = ("asset", "feature_time_ms")
OUTPUT_COLUMNS: tuple[str, ...] = (
    "asset", "asset_class", "feature_time_ms", "knowable_at_ms", "readings", "feature_version",
    *FEATURE_COLUMNS,
)  # fmt: skip
MAINTENANCE_KINDS = ("repair", "inspection")


def signal_of(sensor: pd.Series, quantity: pd.Series) -> pd.Series:
    """The signal group of each reading: by quantity for a sensor's own readings, by feature
    for the edge's window features used in gold ("vibration.band_0_50" -> "vibration_band_0_50");
    NaN for readings no feature uses (other window features such as "vibration.peak")."""
    feature = sensor.str.partition(".")[2]
    own = quantity.map(SIGNALS).where(feature == "")
    edge = ("vibration_" + feature).where(feature.isin(EDGE_FEATURES_IN_GOLD))
    return own.fillna(edge)


def _grid(readings: pd.DataFrame, step_ms: int) -> pd.DataFrame:
    """Per grid step (the bucket ending at `feature_time_ms`) and signal: count, sum, sum of
    squares, max of the values and the latest arrival. Grain out: one row per bucket."""
    signal = signal_of(readings["sensor"], readings["quantity"])
    data = readings.assign(
        signal=signal,
        bucket=(readings["event_time_ms"] // step_ms + 1) * step_ms,
        sq=readings["value"] ** 2,
    ).dropna(subset=["signal", "value"])
    stats = data.groupby(["bucket", "signal"]).agg(
        n=("value", "size"), s=("value", "sum"), ss=("sq", "sum"), mx=("value", "max")
    )
    wide = stats.unstack("signal")
    wide.columns = [f"{signal}__{stat}" for stat, signal in wide.columns]
    wide["readings"] = data.groupby("bucket").size()
    wide["arrived_ms"] = data.groupby("bucket")["arrived_ms"].max()
    first, last = int(wide.index.min()), int(wide.index.max())
    return wide.reindex(pd.RangeIndex(first, last + step_ms, step_ms, name="bucket"))


def _col(grid: pd.DataFrame, name: str) -> pd.Series:
    return grid[name] if name in grid else pd.Series(np.nan, index=grid.index)


def _rolling_mean(grid: pd.DataFrame, signal: str, buckets: int) -> pd.Series:
    """Mean of every reading in the window (weighted by readings, not by buckets)."""
    n = _col(grid, f"{signal}__n").fillna(0).rolling(buckets, min_periods=1).sum()
    s = _col(grid, f"{signal}__s").fillna(0).rolling(buckets, min_periods=1).sum()
    return (s / n).where(n > 0)


def _rolling_std(grid: pd.DataFrame, signal: str, buckets: int) -> pd.Series:
    n = _col(grid, f"{signal}__n").fillna(0).rolling(buckets, min_periods=1).sum()
    s = _col(grid, f"{signal}__s").fillna(0).rolling(buckets, min_periods=1).sum()
    ss = _col(grid, f"{signal}__ss").fillna(0).rolling(buckets, min_periods=1).sum()
    var = ((ss - s * s / n) / (n - 1)).where(n > 1).clip(lower=0.0)
    return np.sqrt(var)


def _rolling_slope(means: pd.Series, buckets: int, step_ms: int) -> pd.Series:
    """Least-squares slope of the bucket means over the window, per hour (needs 3 buckets)."""
    t = pd.Series(np.arange(len(means), dtype=float) * step_ms / HOUR_MS, index=means.index)
    t = t.where(means.notna())
    sums = pd.DataFrame({"t": t, "y": means, "ty": t * means, "tt": t * t, "one": t.notna() * 1.0})
    r = sums.rolling(buckets, min_periods=1).sum()
    var = r["tt"] - r["t"] ** 2 / r["one"]
    slope = (r["ty"] - r["t"] * r["y"] / r["one"]) / var
    return slope.where((r["one"] >= 3) & (var > 1e-12))


def _per_load(value: pd.Series, load: pd.Series, minimum: float) -> pd.Series:
    """`value` per unit of load where the load is above `minimum` (null elsewhere): load
    changes move a machine's temperature, vibration and pressure along with it, a fault moves
    them at the same load."""
    return (value / load).where(load > minimum)


def _since_maintenance(index: pd.Index, maintenance_ms: np.ndarray) -> pd.Series:
    """Hours from the latest repair or inspection at or before each grid time (null before)."""
    if len(maintenance_ms) == 0:
        return pd.Series(np.nan, index=index)
    times = np.sort(maintenance_ms)
    t = index.to_numpy()
    at = np.searchsorted(times, t, side="right") - 1
    hours = (t - times[np.clip(at, 0, None)]) / HOUR_MS
    return pd.Series(np.where(at >= 0, hours, np.nan), index=index)


def _cycles_since(running: pd.Series, maintenance_ms: np.ndarray) -> pd.Series:
    """Off-to-on transitions of the running state since the latest maintenance (null if no state)."""
    if running.isna().all():
        return pd.Series(np.nan, index=running.index)
    on = (running.ffill() >= 0.5).astype(float)
    starts = ((on == 1.0) & (on.shift(fill_value=1.0) == 0.0)).astype(float)
    epoch = np.searchsorted(np.sort(maintenance_ms), running.index.to_numpy(), side="right")
    return starts.groupby(epoch).cumsum()


def _trends_and_regime(
    out: pd.DataFrame,
    grid: pd.DataFrame,
    *,
    vib: pd.Series,
    temp: pd.Series,
    per: Mapping[str, int],
    step_ms: int,
) -> None:
    """Add the features that tell a fault from a change of operating regime (in place): trends
    over two horizons (a fault drifts for hours to days, a load step is a jump the 6 h trend
    forgets within 6 h), signals per unit of load, and the share of the hour the asset ran."""
    pressure = _rolling_mean(grid, "pressure", 1)
    out["vibration_rms_trend_6h"] = _rolling_slope(vib, per["6h"], step_ms)
    out["temperature_trend_24h"] = _rolling_slope(temp, per["24h"], step_ms)
    out["pressure_trend_6h"] = _rolling_slope(pressure, per["6h"], step_ms)
    out["pressure_trend_24h"] = _rolling_slope(pressure, per["24h"], step_ms)
    for band in ("band_50_200", "band_500_1000"):
        means = _rolling_mean(grid, f"vibration_{band}", 1)
        out[f"vibration_{band}_trend_24h"] = _rolling_slope(means, per["24h"], step_ms)
    out["flow_mean_1h"] = _rolling_mean(grid, "flow", per["1h"])
    current = out["current_mean_1h"]
    rise = out["temperature_mean_1h"] - AMBIENT_DEGC
    # Current is the load proxy of a first-order normalization: losses grow faster than the
    # current (I^2 R), so a large load change still moves these; the model sees current too.
    out["temperature_rise_per_amp_1h"] = _per_load(rise, current, MIN_LOAD_CURRENT_A)
    out["vibration_rms_per_amp_1h"] = _per_load(
        out["vibration_rms_mean_1h"], current, MIN_LOAD_CURRENT_A
    )
    out["pressure_per_flow_1h"] = _per_load(
        out["pressure_mean_1h"], out["flow_mean_1h"], MIN_LOAD_FLOW_M3H
    )
    # Weighted by readings like every mean here: the edge sends a state on each change and
    # at least every 5 minutes, so its readings are close to even in time.
    out["running_share_1h"] = _rolling_mean(grid, "running", per["1h"])


def asset_features(
    readings: pd.DataFrame,
    *,
    maintenance_ms: np.ndarray | None = None,
    step_ms: int = 5 * MINUTE_MS,
    emit_from_ms: int | None = None,
) -> pd.DataFrame:
    """Feature rows of one asset on a `step_ms` grid.

    Grain in: one Good silver reading of one asset with asset, sensor, asset_class, quantity, value
    (canonical unit), event_time_ms and arrived_ms (bronze ingest time, epoch ms);
    `maintenance_ms`: the asset's repair and inspection times. Grain out: one row per grid time
    that has readings in its own bucket, from `emit_from_ms` on (earlier readings only give
    the windows their history), with OUTPUT_COLUMNS.
    """
    if readings.empty:
        return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    grid = _grid(readings, step_ms)
    per = {name: max(1, ms // step_ms) for name, ms in HORIZONS_MS.items()}
    out = pd.DataFrame(index=grid.index)
    for h in ("15m", "1h", "24h"):
        out[f"vibration_rms_mean_{h}"] = _rolling_mean(grid, "vibration_rms", per[h])
        out[f"temperature_mean_{h}"] = _rolling_mean(grid, "temperature", per[h])
    out["vibration_rms_max_1h"] = _col(grid, "vibration_rms__mx").rolling(per["1h"], 1).max()
    vib = _rolling_mean(grid, "vibration_rms", 1)
    temp = _rolling_mean(grid, "temperature", 1)
    out["vibration_rms_trend_24h"] = _rolling_slope(vib, per["24h"], step_ms)
    out["temperature_rate_1h"] = _rolling_slope(temp, per["1h"], step_ms)
    out["current_mean_1h"] = _rolling_mean(grid, "current", per["1h"])
    out["current_std_1h"] = _rolling_std(grid, "current", per["1h"])
    out["current_mean_24h"] = _rolling_mean(grid, "current", per["24h"])
    out["pressure_mean_1h"] = _rolling_mean(grid, "pressure", per["1h"])
    out["pressure_mean_24h"] = _rolling_mean(grid, "pressure", per["24h"])
    for feature in EDGE_FEATURES_IN_GOLD:
        out[f"vibration_{feature}_mean_1h"] = _rolling_mean(grid, f"vibration_{feature}", per["1h"])
    out["temperature_vibration_corr_24h"] = temp.rolling(per["24h"], min_periods=12).corr(vib)
    _trends_and_regime(out, grid, vib=vib, temp=temp, per=per, step_ms=step_ms)
    maintenance = np.asarray(maintenance_ms if maintenance_ms is not None else [], dtype=np.int64)
    out["hours_since_maintenance"] = _since_maintenance(grid.index, maintenance)
    out["cycles_since_maintenance"] = _cycles_since(_rolling_mean(grid, "running", 1), maintenance)
    arrived = grid["arrived_ms"].rolling(per["24h"], min_periods=1).max()
    out["knowable_at_ms"] = np.maximum(arrived.to_numpy(), grid.index.to_numpy())
    out["readings"] = grid["readings"]
    out = out[grid["readings"].fillna(0) > 0]
    if emit_from_ms is not None:
        out = out[out.index >= emit_from_ms]
    out = out.replace([np.inf, -np.inf], np.nan)
    out.index.name = "feature_time_ms"
    out = out.reset_index()
    out["asset"] = readings["asset"].iloc[0]
    out["asset_class"] = (
        readings["asset_class"].dropna().iloc[-1] if readings["asset_class"].notna().any() else None
    )
    out["feature_version"] = FEATURE_VERSION
    out["feature_time_ms"] = out["feature_time_ms"].astype("int64")
    out["knowable_at_ms"] = out["knowable_at_ms"].astype("int64")
    out["readings"] = out["readings"].astype("int64")
    for name in FEATURE_COLUMNS:
        out[name] = out[name].astype("float64")
    return out[list(OUTPUT_COLUMNS)]
