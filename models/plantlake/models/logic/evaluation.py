"""How good an alerting model is, in a planner's terms (models, pure).

Scores become alerts at a threshold; the threshold comes from an *alert budget*: the share of
asset-hours the maintenance team can afford to look at. On a holdout period, against the CMMS
failures:
- recall: failures with at least one alert in the horizon before them, over failures;
- precision: alerts followed by a failure within the horizon, over alerts;
- mean lead time: from the first alert of a caught failure to the failure, in hours;
- false alarms per asset-day: alerts not followed by a failure within the horizon, per asset-day.
The static-threshold baseline is what plants run today: fixed limits on vibration and bearing
temperature per asset class, set from healthy history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

DAY_MS = 86_400_000
BASELINE_SIGNALS = ("vibration_rms_mean_1h", "temperature_mean_1h")


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

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items()}


def budget_threshold(scores: np.ndarray, budget: float) -> float:
    """The score above which `budget` of the rows lie (the alert threshold at that budget)."""
    finite = np.asarray(scores, dtype=float)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return float("inf")
    return float(np.quantile(finite, 1.0 - budget, method="higher"))


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
    alerts = rows[rows["score"] >= threshold]
    caught, leads, counted = 0, [], 0
    true_alerts = np.zeros(len(alerts), dtype=bool)
    for asset, mine in rows.groupby("asset"):
        lo, hi = mine["label_time_ms"].min(), mine["label_time_ms"].max()
        fired = alerts[alerts["asset"] == asset]["label_time_ms"].to_numpy()
        for f in failures[failures["asset"] == asset]["event_time_ms"].to_numpy():
            if f - horizon_ms > hi or f <= lo:
                continue
            counted += 1
            before = fired[(fired >= f - horizon_ms) & (fired < f)]
            if len(before):
                caught += 1
                leads.append((f - before.min()) / 3_600_000)
    for i, (asset, t) in enumerate(alerts[["asset", "label_time_ms"]].itertuples(index=False)):
        f = failures[failures["asset"] == asset]["event_time_ms"].to_numpy()
        true_alerts[i] = bool(((f > t) & (f <= t + horizon_ms)).any())
    spans = rows.groupby("asset")["label_time_ms"].agg(lambda s: s.max() - s.min())
    asset_days = max(float(spans.sum()) / DAY_MS, 1e-9)
    return AlertQuality(
        failures=counted,
        caught=caught,
        recall=caught / counted if counted else float("nan"),
        alerts=len(alerts),
        precision=float(true_alerts.mean()) if len(alerts) else float("nan"),
        mean_lead_time_h=float(np.mean(leads)) if leads else float("nan"),
        false_alarms_per_asset_day=float((~true_alerts).sum()) / asset_days,
        threshold=float(threshold),
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
    """The baseline's score: the largest signal-to-limit ratio (alerts at 1.0)."""
    scores = np.zeros(len(rows))
    for name in BASELINE_SIGNALS:
        limit = rows["asset_class"].map(lambda k, n=name: limits.get(str(k), {}).get(n, np.nan))
        ratio = (rows[name] / limit).to_numpy(dtype=float)
        scores = np.fmax(scores, np.nan_to_num(ratio, nan=0.0))
    return scores
