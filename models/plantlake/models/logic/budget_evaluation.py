"""Every method at the same alert budget, with intervals that can say no (models, pure).

A method is anything that scores holdout rows (a model, the static-threshold baseline, the rolling
z-score). Each is thresholded at the same alert budgets (`budget_threshold`), so at a budget all
methods raise the same number of alerts and recall compares like with like. What a method did
at a budget on one holdout is kept as `Outcomes`: one row per counted failure plus alert tallies.
Outcomes of several plant seeds or holdouts pool by concatenation, and the bootstrap resamples
the pooled *failures* (the unit a planner counts) for 95 % intervals on recall and median lead
time. `promotion_verdict` turns two such results into a decision.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from plantlake.models.logic.evaluation import (
    asset_days,
    budget_threshold,
    failure_outcomes,
    median_lead_h,
    true_alerts,
)

BUDGETS: tuple[float, ...] = tuple(k / 100 for k in range(1, 11))
RESAMPLES = 1000
Interval = tuple[float, float]
NO_INTERVAL: Interval = (float("nan"), float("nan"))


@dataclass(frozen=True, eq=False)
class Outcomes:
    """What one method's alerts did at one budget, on one holdout or pooled over several.

    `failures`: failure_outcomes rows (seed tells the holdouts apart); `thresholds`: one per
    holdout pooled; `seeds`: every holdout pooled, also those without a counted failure.
    """

    method: str
    budget: float
    thresholds: tuple[float, ...]
    failures: pd.DataFrame
    alerts: int
    true_alerts: int
    asset_days: float
    seeds: tuple[int | None, ...]


@dataclass(frozen=True)
class ModeResult:
    failures: int
    caught: int
    recall: float
    median_lead_time_h: float


@dataclass(frozen=True)
class MethodResult:
    """A method at a budget: recall and median lead time with bootstrap intervals over failures.

    `threshold` is NaN when pooled holdouts had different thresholds (each had its own).
    """

    method: str
    budget: float
    threshold: float
    failures: int
    caught: int
    recall: float
    recall_ci: Interval
    median_lead_time_h: float
    median_lead_time_ci: Interval
    false_alarms_per_asset_day: float
    precision: float
    alerts: int
    by_mode: Mapping[str, ModeResult] = field(default_factory=dict)
    seeds: tuple[int | None, ...] = ()

    def as_row(self) -> dict[str, object]:
        """Flat, printable: one value per column (intervals as _lo/_hi), modes left out."""
        return {
            "method": self.method, "budget": self.budget, "threshold": self.threshold,
            "failures": self.failures, "caught": self.caught, "recall": self.recall,
            "recall_lo": self.recall_ci[0], "recall_hi": self.recall_ci[1],
            "median_lead_time_h": self.median_lead_time_h,
            "lead_time_lo": self.median_lead_time_ci[0],
            "lead_time_hi": self.median_lead_time_ci[1],
            "false_alarms_per_asset_day": self.false_alarms_per_asset_day,
            "precision": self.precision, "alerts": self.alerts,
            "seeds": ",".join(str(s) for s in self.seeds),
        }  # fmt: skip

    def mode_rows(self) -> list[dict[str, object]]:
        """One printable row per failure mode."""
        return [
            {"method": self.method, "budget": self.budget, "failure_mode": mode, **vars(result)}
            for mode, result in sorted(self.by_mode.items())
        ]


def outcomes_at_budget(
    rows: pd.DataFrame,
    failures: pd.DataFrame,
    *,
    method: str,
    scores: np.ndarray,
    budget: float,
    horizon_ms: int,
    seed: int | None = None,
) -> Outcomes:
    """Threshold `scores` (aligned to `rows`) at `budget` and tally what the alerts did."""
    threshold = budget_threshold(scores, budget)
    scored = rows.assign(score=np.asarray(scores, dtype=float))
    truth = true_alerts(scored, failures, threshold=threshold, horizon_ms=horizon_ms)
    return Outcomes(
        method=method, budget=budget, thresholds=(threshold,),
        failures=failure_outcomes(
            scored, failures, threshold=threshold, horizon_ms=horizon_ms, seed=seed
        ),
        alerts=len(truth), true_alerts=int(truth.sum()), asset_days=asset_days(rows),
        seeds=(seed,),
    )  # fmt: skip


def budget_sweep(
    rows: pd.DataFrame,
    failures: pd.DataFrame,
    *,
    scores: Mapping[str, np.ndarray],
    horizon_ms: int,
    budgets: Iterable[float] = BUDGETS,
    seed: int | None = None,
) -> list[Outcomes]:
    """Every method (name -> scores aligned to `rows`) at every budget, on one holdout."""
    return [
        outcomes_at_budget(
            rows,
            failures,
            method=method,
            scores=values,
            budget=budget,
            horizon_ms=horizon_ms,
            seed=seed,
        )
        for method, values in scores.items()
        for budget in budgets
    ]


def pool(outcomes: Iterable[Outcomes]) -> list[Outcomes]:
    """Pool outcomes of several holdouts per (method, budget), in first-seen order."""
    groups: dict[tuple[str, float], list[Outcomes]] = {}
    for o in outcomes:
        groups.setdefault((o.method, o.budget), []).append(o)
    return [
        Outcomes(
            method=method,
            budget=budget,
            thresholds=tuple(t for o in parts for t in o.thresholds),
            failures=pd.concat([o.failures for o in parts], ignore_index=True),
            alerts=sum(o.alerts for o in parts),
            true_alerts=sum(o.true_alerts for o in parts),
            asset_days=sum(o.asset_days for o in parts),
            seeds=tuple(s for o in parts for s in o.seeds),
        )
        for (method, budget), parts in groups.items()
    ]


def bootstrap_ci(
    outcomes: pd.DataFrame,
    *,
    resamples: int = RESAMPLES,
    random_state: int = 0,
    level: float = 0.95,
) -> tuple[Interval, Interval]:
    """Percentile intervals for recall and median lead time, resampling failures with
    replacement. The same `random_state` draws the same resamples for the same number of
    failures, so methods judged on the same failures are compared on paired resamples."""
    caught = outcomes["caught"].to_numpy(dtype=bool)
    leads = outcomes["lead_h"].to_numpy(dtype=float)
    if len(caught) == 0:
        return NO_INTERVAL, NO_INTERVAL
    picks = np.random.default_rng(random_state).integers(0, len(caught), (resamples, len(caught)))
    tails = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    recall = np.percentile(caught[picks].mean(axis=1), tails)
    with warnings.catch_warnings():
        # A resample that caught nothing has no median lead time; it is left out, not zero.
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(leads[picks], axis=1)
    medians = medians[np.isfinite(medians)]
    lead = np.percentile(medians, tails) if len(medians) else NO_INTERVAL
    return (float(recall[0]), float(recall[1])), (float(lead[0]), float(lead[1]))


def by_mode(outcomes: pd.DataFrame) -> dict[str, ModeResult]:
    """Failures, caught, recall and median lead time per failure mode."""
    return {
        str(mode): ModeResult(
            failures=len(part),
            caught=int(part["caught"].sum()),
            recall=float(part["caught"].mean()),
            median_lead_time_h=median_lead_h(part),
        )
        for mode, part in outcomes.groupby("failure_mode", sort=True)
    }


def summarize(
    outcomes: Outcomes, *, resamples: int = RESAMPLES, random_state: int = 0
) -> MethodResult:
    """The MethodResult of (pooled) outcomes."""
    failures = outcomes.failures
    counted, caught = len(failures), int(failures["caught"].sum())
    recall_ci, lead_ci = bootstrap_ci(failures, resamples=resamples, random_state=random_state)
    thresholds = set(outcomes.thresholds)
    return MethodResult(
        method=outcomes.method, budget=outcomes.budget,
        threshold=thresholds.pop() if len(thresholds) == 1 else float("nan"),
        failures=counted, caught=caught,
        recall=caught / counted if counted else float("nan"), recall_ci=recall_ci,
        median_lead_time_h=median_lead_h(failures), median_lead_time_ci=lead_ci,
        false_alarms_per_asset_day=(outcomes.alerts - outcomes.true_alerts)
        / max(outcomes.asset_days, 1e-9),
        precision=outcomes.true_alerts / outcomes.alerts if outcomes.alerts else float("nan"),
        alerts=outcomes.alerts, by_mode=by_mode(failures), seeds=outcomes.seeds,
    )  # fmt: skip


def summaries(
    outcomes: Iterable[Outcomes], *, resamples: int = RESAMPLES, random_state: int = 0
) -> list[MethodResult]:
    """Pool per (method, budget) and summarize each."""
    return [summarize(o, resamples=resamples, random_state=random_state) for o in pool(outcomes)]


def budget_curve(results: Iterable[MethodResult]) -> pd.DataFrame:
    """One row per (method, budget) with the columns of MethodResult.as_row."""
    frame = pd.DataFrame([r.as_row() for r in results])
    return frame.sort_values(["method", "budget"], kind="stable").reset_index(drop=True)


def mode_table(results: Iterable[MethodResult]) -> pd.DataFrame:
    """One row per (method, budget, failure_mode)."""
    return pd.DataFrame([row for r in results for row in r.mode_rows()])


def paired_lead_times(ours: Outcomes, theirs: Outcomes) -> tuple[int, float, float]:
    """Median lead times on the failures both methods caught: (how many, ours, theirs).

    Each method's median lead time runs over the failures it caught; a method that catches
    more of the quick failures (hours of warning) shows a shorter median without warning later
    on any one failure. Compared on the same failures, the two say which warns earlier."""
    key = ["seed", "asset", "failure_time_ms"]
    both = ours.failures[ours.failures["caught"]].merge(
        theirs.failures[theirs.failures["caught"]], on=key, suffixes=("_ours", "_theirs")
    )
    if both.empty:
        return 0, math.nan, math.nan
    return len(both), float(both["lead_h_ours"].median()), float(both["lead_h_theirs"].median())


@dataclass(frozen=True)
class Verdict:
    promoted: bool
    reason: str


def promotion_verdict(
    challenger: MethodResult, champion: MethodResult | None, *, tolerance: float = 1e-9
) -> Verdict:
    """Promote only on evidence: the challenger's recall lower bound must not be below the
    champion's. When the lower bounds are equal (within `tolerance`), the challenger is promoted
    only if its median lead time is at least the champion's (equal lead times promote; a method
    that caught nothing has no lead time, shorter than any other). No champion: promoted.

    Raises ValueError when the two were judged at different budgets.
    """
    if champion is None:
        return Verdict(True, f"no champion; challenger {_describe(challenger)}")
    if not math.isclose(challenger.budget, champion.budget):
        raise ValueError(
            f"Challenger judged at a {challenger.budget:.0%} budget, champion at "
            f"{champion.budget:.0%}: compare methods at the same alert budget."
        )
    lo, their_lo = challenger.recall_ci[0], champion.recall_ci[0]
    if math.isnan(lo):
        promoted, why = False, "no failure to judge the challenger on"
    elif math.isnan(their_lo) or lo > their_lo + tolerance:
        promoted, why = True, f"recall lower bound {lo:.3f} is above the champion's {their_lo:.3f}"
    elif lo < their_lo - tolerance:
        promoted, why = False, f"recall lower bound {lo:.3f} is below the champion's {their_lo:.3f}"
    else:
        promoted = _lead(challenger) >= _lead(champion)
        why = f"equal recall lower bounds ({lo:.3f}); " + (
            "median lead time at least the champion's" if promoted else "shorter median lead time"
        )
    return Verdict(
        promoted, f"{why}: challenger {_describe(challenger)} vs champion {_describe(champion)}"
    )


def _lead(result: MethodResult) -> float:
    return -math.inf if math.isnan(result.median_lead_time_h) else result.median_lead_time_h


def _describe(r: MethodResult) -> str:
    (lo, hi), (lead_lo, lead_hi) = r.recall_ci, r.median_lead_time_ci
    return (
        f"{r.method}: recall {r.recall:.3f} [{lo:.3f}, {hi:.3f}] at a {r.budget:.0%} budget "
        f"({r.caught}/{r.failures} failures), median lead {r.median_lead_time_h:.1f} h "
        f"[{lead_lo:.1f}, {lead_hi:.1f}]"
    )
