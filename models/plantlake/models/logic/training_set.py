"""Training sets that cannot see the future: labels, point-in-time feature joins, time splits (models, pure).

A label time t of an asset asks: "does this asset fail within the horizon after t?" It is joined
to the asset's latest feature row stamped at or before t (`feature_time_ms <= t`), no older than
the maximum staleness. With `as_of="ingest"` the row must also have been *knowable* by t (every
reading it used had arrived, `knowable_at_ms <= t`), so a late correction cannot leak into the
past. Labels whose horizon reaches past what the CMMS export has observed are left out (they are
not negative, just unknown yet), and so are label times while the asset is down for repair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from plantlake.core.errors import ConfigError
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS

EVENT, INGEST = "event", "ingest"
TRAIN, VALIDATION = "train", "validation"


@dataclass(frozen=True)
class LabelPolicy:
    horizon_ms: int
    every_ms: int
    max_staleness_ms: int
    as_of: str = EVENT  # EVENT: feature_time_ms <= t; INGEST: also knowable_at_ms <= t

    def __post_init__(self) -> None:
        if self.as_of not in (EVENT, INGEST):
            raise ConfigError(f"as_of must be {EVENT!r} or {INGEST!r}, got {self.as_of!r}.")


def label_times(features: pd.DataFrame, *, every_ms: int, until_ms: int) -> pd.DataFrame:
    """Per asset, label times every `every_ms` from its first feature row to `until_ms`.

    Grain in: gold.features rows. Grain out: one row per (asset, label_time_ms).
    """
    frames = []
    for asset, rows in features.groupby("asset"):
        first = -(-int(rows["feature_time_ms"].min()) // every_ms) * every_ms
        times = np.arange(first, until_ms + 1, every_ms, dtype=np.int64)
        frames.append(pd.DataFrame({"asset": asset, "label_time_ms": times}))
    if not frames:
        return pd.DataFrame(
            {"asset": pd.Series(dtype=str), "label_time_ms": pd.Series(dtype="int64")}
        )
    return pd.concat(frames, ignore_index=True)


def failure_labels(
    times: pd.DataFrame, events: pd.DataFrame, *, horizon_ms: int, observed_until_ms: int
) -> pd.DataFrame:
    """Label each (asset, label_time_ms): 1 when a failure follows within (t, t + horizon].

    `events`: silver.maintenance_events rows (asset, event, failure_mode, event_time_ms).
    Adds label, failure_mode (of that failure), time_to_failure_h; drops label times whose
    horizon ends after `observed_until_ms` and those while the asset is down (from a failure
    to the repair after it).
    """
    out = []
    for asset, rows in times.groupby("asset"):
        mine = events[events["asset"] == asset]
        failures = mine[mine["event"] == "failure"].sort_values("event_time_ms")
        f_times = failures["event_time_ms"].to_numpy(dtype=np.int64)
        modes = failures["failure_mode"].to_numpy(dtype=object)
        repairs = np.sort(mine[mine["event"] == "repair"]["event_time_ms"].to_numpy(np.int64))
        t = rows["label_time_ms"].to_numpy(dtype=np.int64)
        # Sentinels past the end make "no failure after t" an infinitely distant failure.
        f_next = np.append(f_times, np.iinfo(np.int64).max)
        nxt = np.searchsorted(f_times, t, side="right")  # first failure strictly after t
        until = np.where(nxt < len(f_times), f_next[nxt] - t, np.inf).astype(float)
        label = (until <= horizon_ms).astype("int64")
        mode = np.concatenate([np.asarray(modes, dtype=object), np.array([None], dtype=object)])[
            nxt
        ]
        keep = (t + horizon_ms <= observed_until_ms) & ~_down(t, f_times, repairs)
        frame = pd.DataFrame(
            {
                "asset": asset,
                "label_time_ms": t,
                "label": label,
                "failure_mode": np.where(label == 1, mode, None),
                "time_to_failure_h": np.where(np.isfinite(until), until / 3_600_000, np.nan),
            }
        )
        out.append(frame[keep])
    if not out:
        return times.assign(label=pd.Series(dtype="int64")).iloc[0:0]
    return pd.concat(out, ignore_index=True)


def _down(t: np.ndarray, failures: np.ndarray, repairs: np.ndarray) -> np.ndarray:
    """Whether each time lies between a failure and the first repair after it."""
    last = np.searchsorted(failures, t, side="right") - 1  # last failure at or before t
    down = np.zeros(len(t), dtype=bool)
    for i in np.nonzero(last >= 0)[0]:
        fixed = repairs[repairs >= failures[last[i]]]
        down[i] = len(fixed) == 0 or t[i] < fixed[0]
    return down


def point_in_time_join(
    labels: pd.DataFrame, features: pd.DataFrame, *, policy: LabelPolicy
) -> pd.DataFrame:
    """Each label row with the latest feature row the policy allows (see the module doc).

    Grain in: one label row per (asset, label_time_ms); gold.features rows. Grain out: the label
    rows that found a feature row within the maximum staleness, with its FEATURE_COLUMNS,
    feature_time_ms, knowable_at_ms and staleness_ms.
    """
    on = "feature_time_ms" if policy.as_of == EVENT else "knowable_at_ms"
    right = features[
        ["asset", "asset_class", "feature_time_ms", "knowable_at_ms", *FEATURE_COLUMNS]
    ]
    right = right.copy()
    right["_as_of"] = right[on].astype("int64")
    left = labels.copy()
    left["_as_of"] = left["label_time_ms"].astype("int64")
    joined = pd.merge_asof(
        left.sort_values("_as_of"), right.sort_values("_as_of"),
        on="_as_of", by="asset", direction="backward", allow_exact_matches=True,
    )  # fmt: skip
    joined = joined.drop(columns="_as_of")
    joined["staleness_ms"] = joined["label_time_ms"] - joined["feature_time_ms"]
    fresh = joined["feature_time_ms"].notna() & (joined["staleness_ms"] <= policy.max_staleness_ms)
    joined = joined[fresh].copy()
    for name in ("feature_time_ms", "knowable_at_ms", "staleness_ms"):
        joined[name] = joined[name].astype("int64")
    return joined.sort_values(["asset", "label_time_ms"]).reset_index(drop=True)


def time_split(rows: pd.DataFrame, *, validation_fraction: float, gap_ms: int) -> pd.DataFrame:
    """Add `split`: the last `validation_fraction` of the label-time span is validation; train
    rows end `gap_ms` before it (set the gap to at least the horizon, so no training label
    looks into the validation period). Rows inside the gap are dropped."""
    if rows.empty:
        return rows.assign(split=pd.Series(dtype=str))
    lo, hi = int(rows["label_time_ms"].min()), int(rows["label_time_ms"].max())
    split_at = hi - int((hi - lo) * validation_fraction)
    split = np.where(
        rows["label_time_ms"] >= split_at,
        VALIDATION,
        np.where(rows["label_time_ms"] < split_at - gap_ms, TRAIN, ""),
    )
    return rows.assign(split=split)[split != ""].reset_index(drop=True)


def build_training_set(
    features: pd.DataFrame,
    events: pd.DataFrame,
    *,
    policy: LabelPolicy,
    observed_until_ms: int,
    validation_fraction: float,
    gap_ms: int,
) -> pd.DataFrame:
    """Labels → point-in-time features → time split, in one call (what `models train` uses)."""
    times = label_times(features, every_ms=policy.every_ms, until_ms=observed_until_ms)
    labels = failure_labels(
        times, events, horizon_ms=policy.horizon_ms, observed_until_ms=observed_until_ms
    )
    rows = point_in_time_join(labels, features, policy=policy)
    return time_split(rows, validation_fraction=validation_fraction, gap_ms=gap_ms)
