"""How good an alerting model is, in a planner's terms (models, pure).

Scores become alerts at a threshold; the threshold comes from an *alert budget*: the share of
asset-hours the maintenance team can afford to look at. On a holdout period, against the CMMS
failures:
- recall: failures with at least one alert in the horizon before them, over failures;
- precision: alerts followed by a failure within the horizon, over alerts;
- lead time: from the first alert of a caught failure to the failure, in hours;
- false alarms per asset-day: alerts not followed by a failure within the horizon, per asset-day.
Every figure is built from two tallies: one outcome per failure (`failure_outcomes`) and one
truth flag per alert (`true_alerts`), so recall, per-mode breakdowns and bootstrap intervals
(models.logic.budget_evaluation) all count the same way.
The static-threshold baseline is what plants run today: fixed limits on vibration and bearing
temperature per asset class, set from healthy history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
BASELINE_SIGNALS = ("vibration_rms_mean_1h", "temperature_mean_1h")
UNKNOWN_MODE = "unknown"  # a CMMS failure without a failure mode
OUTCOME_COLUMNS = ("asset", "failure_time_ms", "failure_mode", "caught", "lead_h", "seed")


@dataclass(frozen=True)
class AlertQuality:
    failures: int
    caught: int
    recall: float
    alerts: int
    precision: float
    mean_lead_time_h: float
    false_alarms_per_asset_day: float
    threshold: float
    median_lead_time_h: float = float("nan")

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items()}


def budget_threshold(scores: np.ndarray, budget: float) -> float:
    """The score above which `budget` of the rows lie (the alert threshold at that budget)."""
    finite = np.asarray(scores, dtype=float)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return float("inf")
    return float(np.quantile(finite, 1.0 - budget, method="higher"))


def failure_events(failures: pd.DataFrame) -> pd.DataFrame:
    """CMMS failures as (asset, failure_time_ms, failure_mode), sorted; other events dropped.

    `failures`: rows with asset and event_time_ms, optionally event (only "failure" kept) and
    failure_mode (missing ones become UNKNOWN_MODE).
    """
    if "event" in failures.columns:
        failures = failures[failures["event"] == "failure"]
    modes = failures.get("failure_mode", pd.Series(None, index=failures.index, dtype=object))
    named = modes.notna() & (modes.astype(str) != "")
    out = pd.DataFrame(
        {
            "asset": failures["asset"].astype(object).to_numpy(),
            "failure_time_ms": failures["event_time_ms"].to_numpy(dtype=np.int64),
            "failure_mode": modes.astype(object).where(named, UNKNOWN_MODE).to_numpy(),
        }
    )
    return out.sort_values(["asset", "failure_time_ms"], kind="stable").reset_index(drop=True)


def counted_failures(
    rows: pd.DataFrame, failures: pd.DataFrame, *, horizon_ms: int
) -> pd.DataFrame:
    """The failures a holdout can be judged on: those whose horizon window overlaps the label
    times of their asset in `rows` (a failure the holdout never looked at cannot be missed)."""
    events = failure_events(failures)
    spans = rows.groupby("asset")["label_time_ms"].agg(["min", "max"])
    lo = events["asset"].map(spans["min"]).to_numpy(dtype=float)
    hi = events["asset"].map(spans["max"]).to_numpy(dtype=float)
    t = events["failure_time_ms"].to_numpy(dtype=float)
    # NaN bounds (an asset with no rows) compare False, so its failures are left out.
    return events[(t - horizon_ms <= hi) & (t > lo)].reset_index(drop=True)


def failure_outcomes(
    rows: pd.DataFrame,
    failures: pd.DataFrame,
    *,
    threshold: float,
    horizon_ms: int,
    seed: int | None = None,
) -> pd.DataFrame:
    """One row per counted failure: was it caught, and how early.

    `rows`: scored label times (asset, label_time_ms, score). A failure at f is caught when some
    row of its asset alerts (score >= threshold) in [f - horizon, f); lead_h runs from the first
    such alert to f (NaN when missed). `seed` tags the rows with the plant seed or holdout they
    came from, so pooled outcomes can still be told apart. Columns: OUTCOME_COLUMNS.
    """
    counted = counted_failures(rows, failures, horizon_ms=horizon_ms)
    left = counted.assign(window_start_ms=counted["failure_time_ms"] - horizon_ms)
    # The first alert at or after the window start, per asset; caught if it precedes the failure.
    first = pd.merge_asof(
        left.sort_values("window_start_ms", kind="stable"),
        _alert_times(rows, threshold).sort_values("alert_ms", kind="stable"),
        left_on="window_start_ms", right_on="alert_ms", by="asset", direction="forward",
    )  # fmt: skip
    first = first.sort_values(["asset", "failure_time_ms"], kind="stable")
    alert_ms = first["alert_ms"].to_numpy(dtype=float)
    failure_ms = first["failure_time_ms"].to_numpy(dtype=np.int64)
    caught = alert_ms < failure_ms  # NaN (no alert after the window start) compares False
    return pd.DataFrame(
        {
            "asset": first["asset"].to_numpy(),
            "failure_time_ms": failure_ms,
            "failure_mode": first["failure_mode"].to_numpy(),
            "caught": caught,
            "lead_h": np.where(caught, (failure_ms - alert_ms) / HOUR_MS, np.nan),
            "seed": seed,
        }
    )


def true_alerts(
    rows: pd.DataFrame, failures: pd.DataFrame, *, threshold: float, horizon_ms: int
) -> np.ndarray:
    """For each alert (row with score >= threshold, in time order per asset): whether a failure
    of its asset follows within (t, t + horizon]."""
    alerts = _alert_times(rows, threshold).sort_values("alert_ms", kind="stable")
    events = failure_events(failures).sort_values("failure_time_ms", kind="stable")
    nxt = pd.merge_asof(
        alerts, events[["asset", "failure_time_ms"]],
        left_on="alert_ms", right_on="failure_time_ms", by="asset",
        direction="forward", allow_exact_matches=False,
    )  # fmt: skip
    until = (nxt["failure_time_ms"] - nxt["alert_ms"]).to_numpy(dtype=float)
    return np.asarray(until <= horizon_ms)


def asset_days(rows: pd.DataFrame) -> float:
    """Asset-days a holdout covers: per asset, first to last label time."""
    spans = rows.groupby("asset")["label_time_ms"].agg(lambda s: s.max() - s.min())
    return float(spans.sum()) / DAY_MS


def _alert_times(rows: pd.DataFrame, threshold: float) -> pd.DataFrame:
    fired = rows[rows["score"].to_numpy(dtype=float) >= threshold]
    return pd.DataFrame(
        {
            "asset": fired["asset"].astype(object).to_numpy(),
            "alert_ms": fired["label_time_ms"].to_numpy(dtype=np.int64),
        }
    )


def median_lead_h(outcomes: pd.DataFrame) -> float:
    """Median lead time of the caught failures in `outcomes`, hours (NaN when none caught)."""
    leads = outcomes["lead_h"].to_numpy(dtype=float)
    leads = leads[np.isfinite(leads)]
    return float(np.median(leads)) if len(leads) else float("nan")


def alert_quality(
    rows: pd.DataFrame,
    failures: pd.DataFrame,
    *,
    threshold: float,
    horizon_ms: int,
) -> AlertQuality:
    """Score a holdout's alerts against its failures.

    `rows`: one scored label time per (asset, label_time_ms) with `score`; `failures`: the CMMS
    failure events (asset, event_time_ms). Only failures whose horizon window overlaps the scored
    label times of their asset count (a failure the holdout never looked at cannot be missed).
    """
    outcomes = failure_outcomes(rows, failures, threshold=threshold, horizon_ms=horizon_ms)
    truth = true_alerts(rows, failures, threshold=threshold, horizon_ms=horizon_ms)
    counted, caught = len(outcomes), int(outcomes["caught"].sum())
    leads = outcomes["lead_h"].dropna()
    return AlertQuality(
        failures=counted,
        caught=caught,
        recall=caught / counted if counted else float("nan"),
        alerts=len(truth),
        precision=float(truth.mean()) if len(truth) else float("nan"),
        mean_lead_time_h=float(leads.mean()) if len(leads) else float("nan"),
        false_alarms_per_asset_day=float((~truth).sum()) / max(asset_days(rows), 1e-9),
        threshold=float(threshold),
        median_lead_time_h=median_lead_h(outcomes),
    )


def baseline_limits(train: pd.DataFrame, *, quantile: float = 0.99) -> dict[str, dict[str, float]]:
    """Static limits per asset class: the `quantile` of each baseline signal on healthy rows."""
    healthy = train[train["label"] == 0]
    limits: dict[str, dict[str, float]] = {}
    for klass, rows in healthy.groupby("asset_class"):
        limits[str(klass)] = {
            name: float(rows[name].quantile(quantile))
            for name in BASELINE_SIGNALS
            if rows[name].notna().any()
        }
    return limits


def baseline_scores(rows: pd.DataFrame, limits: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """The baseline's score: the largest signal-to-limit ratio (alerts at 1.0 as plants run it;
    at an alert budget, thresholded like any model's score)."""
    scores = np.zeros(len(rows))
    for name in BASELINE_SIGNALS:
        limit = rows["asset_class"].map(lambda k, n=name: limits.get(str(k), {}).get(n, np.nan))
        ratio = (rows[name] / limit).to_numpy(dtype=float)
        scores = np.fmax(scores, np.nan_to_num(ratio, nan=0.0))
    return scores
