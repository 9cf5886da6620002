"""Baselines a model must beat, beyond the static limits plants run today (models, pure).

- Rolling z-score: each asset against its own recent past. Every signal is compared with the
  same asset's trailing mean and standard deviation (rows strictly before, within a window);
  the score is the largest |z| (|z|, because pressure falls in a seal leak while vibration and
  temperature rise).
- ISO 10816 vibration zones: velocity RMS against the standard's zone boundaries.
Both return one score per row, to be thresholded at an alert budget like any model's score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plantlake.models.logic.evaluation import DAY_MS

ZSCORE_SIGNALS = (
    "vibration_rms_mean_1h", "temperature_mean_1h", "current_std_1h", "pressure_mean_1h",
    "vibration_band_50_200_mean_1h", "vibration_band_500_1000_mean_1h",
)  # fmt: skip
# ISO 10816-1, class II (medium machines, 15-75 kW): zone A/B, B/C and C/D boundaries in mm/s.
ISO_10816_CLASS_II_MM_S = (1.12, 2.8, 7.1)
# A history that hardly moves would make any change infinitely surprising; a change below a
# thousandth of the signal's level is never one a planner should look at.
RELATIVE_STD_FLOOR = 1e-3


def rolling_zscores(
    rows: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    signals: tuple[str, ...] = ZSCORE_SIGNALS,
    window_ms: int = 7 * DAY_MS,
    min_periods: int = 24,
) -> np.ndarray:
    """The rolling z-score of each row of `rows` (aligned to it): max over signals of |z|.

    z compares a row's value with the mean and standard deviation of the same asset's rows in
    [t - window, t) — strictly earlier label times only — once at least `min_periods` of them
    have a value. `history`: earlier rows of the same assets (e.g. the training split) the
    trailing statistics may use; rows in both count once. Signals missing from the columns or
    without a value are skipped; a row with no z at all scores 0 (no evidence).
    """
    wanted = rows.assign(_pos=np.arange(len(rows)))
    if history is not None and len(history):
        keys = ["asset", "label_time_ms"]
        seen = pd.MultiIndex.from_frame(history[keys]).isin(pd.MultiIndex.from_frame(rows[keys]))
        wanted = pd.concat([history[~seen].assign(_pos=-1), wanted], ignore_index=True)
    present = [s for s in signals if s in wanted.columns]
    frame = wanted[["asset", "label_time_ms", "_pos", *present]].copy()
    frame["_at"] = pd.to_datetime(frame["label_time_ms"], unit="ms")
    frame = frame.sort_values(["asset", "_at"], kind="stable").set_index("_at")
    scores = np.zeros(len(frame))
    for name in present:
        values = frame[name].astype(float)
        # Groups come out in the (sorted) frame's order, so positions line up with `frame`.
        trailing = values.groupby(frame["asset"].to_numpy(), sort=False).rolling(
            pd.Timedelta(milliseconds=window_ms), closed="left", min_periods=min_periods
        )
        mean = trailing.mean().to_numpy()
        std = trailing.std().to_numpy()
        std = np.fmax(std, RELATIVE_STD_FLOOR * np.abs(mean))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs(values.to_numpy() - mean) / std
        scores = np.fmax(scores, np.where(np.isfinite(z), z, 0.0))
    out = np.zeros(len(rows))
    mine = frame["_pos"].to_numpy() >= 0
    out[frame["_pos"].to_numpy()[mine]] = scores[mine]
    return out


def iso10816_scores(
    rows: pd.DataFrame,
    *,
    zones: tuple[float, float, float] = ISO_10816_CLASS_II_MM_S,
    signal: str = "vibration_rms_mean_1h",
) -> np.ndarray:
    """ISO 10816 zone of each row's vibration velocity as a continuous score: 0-1 in zone A,
    1-2 in B, 2-3 in C, above 3 in D (the fraction is the position within the zone; D grows at
    the C zone's rate). No vibration scores 0. Being monotonic in one signal, at an alert budget
    it alerts exactly where ranking by that signal would: the zones matter only at fixed limits.
    """
    if signal not in rows.columns:
        return np.zeros(len(rows))
    v = rows[signal].to_numpy(dtype=float)
    ab, bc, cd = zones
    inside = np.interp(v, [0.0, ab, bc, cd], [0.0, 1.0, 2.0, 3.0])
    beyond = 3.0 + (v - cd) / (cd - bc)
    return np.nan_to_num(np.where(v > cd, beyond, inside), nan=0.0)
