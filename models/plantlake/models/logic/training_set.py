"""Training sets that cannot see the future: labels, point-in-time feature joins, time splits (models, pure).

A label time t of an asset asks: "does this asset fail within the horizon after t?" It is joined
to the asset's latest feature row stamped at or before t (`feature_time_ms <= t`), no older than
the maximum staleness. With `as_of="ingest"` the row must also have been *knowable* by t (every
reading it used had arrived, `knowable_at_ms <= t`), so a late correction cannot leak into the
past. Labels whose horizon reaches past what the CMMS export has observed are left out (they are
not negative, just unknown yet), and so are label times while the asset is down for repair.

Planners' verdicts on work orders (gold.work_order_feedback) are a second label source, applied
by one rule (`feedback_labels`), as of the cutoff (a verdict decided later is not used), with
each order's latest verdict counting:
- `done`: the planner found the fault and fixed it. That is a failure the CMMS would otherwise
  never show (it was caught before the breakdown): a failure event of the order's asset and
  mode at `decided_at`, with the repair at the same instant (the asset is not down), so the
  label times in [decided_at - horizon, decided_at) become positive. Unless the CMMS records a
  failure of that asset within the horizon around it: then it is the same fault, counted once.
- `false_alarm`: the planner looked and found the asset healthy, i.e. no failure within the
  horizon after `decided_at`. Every label time t in [decided_at - horizon, decided_at] therefore
  has a known label 0 as long as the CMMS shows no failure in (t, decided_at], so such times are
  kept even where the CMMS alone leaves them unknown (their horizon reaches past the cutoff:
  the most recent rows, the ones a model alarmed on). An observed CMMS failure always wins over
  a verdict: the label stays what the CMMS says.
- `acknowledged` changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from plantlake.core.contracts import DONE, FALSE_ALARM
from plantlake.core.errors import ConfigError
from plantlake.pipelines.transforms.features import FEATURE_COLUMNS

EVENT, INGEST = "event", "ingest"
# What the builder needs of gold.work_order_feedback.
FEEDBACK_COLUMNS = ("work_order_id", "asset", "failure_mode", "verdict", "decided_at_ms")
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
    times: pd.DataFrame,
    events: pd.DataFrame,
    *,
    horizon_ms: int,
    observed_until_ms: int,
    healthy: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Label each (asset, label_time_ms): 1 when a failure follows within (t, t + horizon].

    `events`: silver.maintenance_events rows (asset, event, failure_mode, event_time_ms).
    Adds label, failure_mode (of that failure), time_to_failure_h; drops label times whose
    horizon ends after `observed_until_ms` and those while the asset is down (from a failure
    to the repair after it). `healthy` (asset, from_ms, to_ms) spans, from false alarms, keep
    the label times inside them that no observed failure follows within the horizon, as 0.
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
        down = _down(t, f_times, repairs)
        keep = (t + horizon_ms <= observed_until_ms) & ~down
        if healthy is not None:
            keep |= (label == 0) & _inside(t, healthy[healthy["asset"] == asset]) & ~down
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


def _inside(t: np.ndarray, spans: pd.DataFrame) -> np.ndarray:
    """Whether each time lies in one of the [from_ms, to_ms] spans (few: one per verdict)."""
    lo = spans["from_ms"].to_numpy(dtype=np.int64)
    hi = spans["to_ms"].to_numpy(dtype=np.int64)
    return ((t[:, None] >= lo) & (t[:, None] <= hi)).any(axis=1)


@dataclass(frozen=True)
class FeedbackLabels:
    """What planners' verdicts add to the CMMS ground truth as of a cutoff (module doc)."""

    events: pd.DataFrame  # failure + repair rows of `done` verdicts that the CMMS lacks
    healthy: pd.DataFrame  # (asset, from_ms, to_ms): label times a false alarm makes known 0
    verdicts: dict[str, int]  # each order's latest verdict by the cutoff, counted by verdict
    done_in_cmms: int  # `done` verdicts the CMMS already records (counted once, as the CMMS's)


def latest_verdicts(feedback: pd.DataFrame, *, until_ms: int) -> pd.DataFrame:
    """Each work order's latest verdict decided at or before `until_ms`.

    A planner may change their mind (acknowledged, then done); a verdict decided after the
    cutoff was not known then, so a training set rebuilt later for the same cutoff is the same.
    """
    known = feedback[feedback["decided_at_ms"] <= until_ms]
    # feedback_id breaks ties between verdicts of the same millisecond, so reruns agree.
    by = ["decided_at_ms", "feedback_id"] if "feedback_id" in known.columns else ["decided_at_ms"]
    ordered = known.sort_values(by, kind="stable")
    return ordered.drop_duplicates("work_order_id", keep="last").reset_index(drop=True)


def feedback_labels(
    feedback: pd.DataFrame, events: pd.DataFrame, *, horizon_ms: int, observed_until_ms: int
) -> FeedbackLabels:
    """The rule by which verdicts change labels (see the module doc).

    `feedback`: gold.work_order_feedback rows (FEEDBACK_COLUMNS, optionally feedback_id).
    `events`: the CMMS's silver.maintenance_events rows.
    """
    latest = latest_verdicts(feedback, until_ms=observed_until_ms)
    cmms = events[(events["event"] == "failure") & (events["event_time_ms"] <= observed_until_ms)]
    done = latest[latest["verdict"] == DONE]
    same_fault = np.array(
        [
            ((cmms["asset"] == asset) & ((cmms["event_time_ms"] - at).abs() <= horizon_ms)).any()
            for asset, at in zip(done["asset"], done["decided_at_ms"], strict=True)
        ],
        dtype=bool,
    )
    new = done[~same_fault]
    # The repair at the same instant: found and fixed, so the asset was never down.
    added = pd.DataFrame(
        {
            "asset": np.repeat(new["asset"].to_numpy(dtype=object), 2),
            "event": np.tile(np.array(["failure", "repair"], dtype=object), len(new)),
            "failure_mode": np.repeat(new["failure_mode"].to_numpy(dtype=object), 2),
            "event_time_ms": np.repeat(new["decided_at_ms"].to_numpy(dtype=np.int64), 2),
        }
    )
    false = latest[latest["verdict"] == FALSE_ALARM]
    healthy = pd.DataFrame(
        {
            "asset": false["asset"].astype(object),
            "from_ms": false["decided_at_ms"].astype("int64") - horizon_ms,
            "to_ms": false["decided_at_ms"].astype("int64"),
        }
    ).reset_index(drop=True)
    return FeedbackLabels(
        events=added,
        healthy=healthy,
        verdicts={str(k): int(v) for k, v in latest["verdict"].value_counts().items()},
        done_in_cmms=int(same_fault.sum()),
    )


@dataclass(frozen=True)
class LabelChanges:
    """How a labelled set with feedback differs from the CMMS-only one, per (asset, time)."""

    positives: int  # rows labelled 1 that were 0 or unknown
    negatives: int  # rows labelled 0 that were 1 or unknown
    removed: int  # rows feedback made unknown

    @property
    def changed(self) -> int:
        return self.positives + self.negatives + self.removed


def label_changes(before: pd.DataFrame, after: pd.DataFrame) -> LabelChanges:
    """Compare two labelled frames (asset, label_time_ms, label) row by row."""
    key = ["asset", "label_time_ms"]
    both = pd.merge(
        before[[*key, "label"]], after[[*key, "label"]], on=key, how="outer",
        suffixes=("_before", "_after"),
    )  # fmt: skip
    was, now = both["label_before"], both["label_after"]
    moved = now.notna() & (was.isna() | (was != now))
    return LabelChanges(
        positives=int((moved & (now == 1)).sum()),
        negatives=int((moved & (now == 0)).sum()),
        removed=int((was.notna() & now.isna()).sum()),
    )


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


def labelled_set(
    features: pd.DataFrame,
    events: pd.DataFrame,
    *,
    policy: LabelPolicy,
    observed_until_ms: int,
    feedback: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Labels (from the CMMS, and planners' verdicts when `feedback` is given) joined point in
    time to their features; not yet split."""
    times = label_times(features, every_ms=policy.every_ms, until_ms=observed_until_ms)
    healthy = None
    if feedback is not None and len(feedback):
        extra = feedback_labels(
            feedback, events, horizon_ms=policy.horizon_ms, observed_until_ms=observed_until_ms
        )
        events = (
            pd.concat([events, extra.events], ignore_index=True) if len(extra.events) else events
        )
        healthy = extra.healthy
    labels = failure_labels(
        times, events, horizon_ms=policy.horizon_ms, observed_until_ms=observed_until_ms,
        healthy=healthy,
    )  # fmt: skip
    return point_in_time_join(labels, features, policy=policy)


def build_training_set(
    features: pd.DataFrame,
    events: pd.DataFrame,
    *,
    policy: LabelPolicy,
    observed_until_ms: int,
    validation_fraction: float,
    gap_ms: int,
    feedback: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Labels → point-in-time features → time split, in one call (what `models train` uses)."""
    rows = labelled_set(
        features, events, policy=policy, observed_until_ms=observed_until_ms, feedback=feedback
    )
    return time_split(rows, validation_fraction=validation_fraction, gap_ms=gap_ms)
