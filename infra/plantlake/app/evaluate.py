"""`plantlake models evaluate`: every method at the same alert budget, over several plant seeds,
with intervals that can say no (app: composes the simulator's history and the models' logic).

Per seed, the simulated plant's history (`simulator.plant_history`: silver's rules and gold's
feature code, no lake) becomes a point-in-time training set split in time as `models train`
splits it; both models train on the training split, and the models and the baselines (static
limits, per-asset rolling z-score, ISO 10816 zones) score the holdout. Every method is
thresholded at each budget of 1..10 %; the holdouts' failures pool over the seeds, and the
bootstrap over failures gives 95 % intervals on recall and median lead time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from plantlake.core.config import Settings
from plantlake.models.jobs.evaluation_report import curve_table, method_table, modes_table
from plantlake.models.logic.budget_evaluation import (
    BUDGETS,
    MethodResult,
    Outcomes,
    budget_curve,
    budget_sweep,
    mode_table,
    paired_lead_times,
    pool,
    summaries,
)
from plantlake.models.logic.methods import BASELINES, FAILURE_PREDICTOR, method_scores
from plantlake.models.logic.training_set import TRAIN, VALIDATION


@dataclass(frozen=True)
class Evaluation:
    results: list[MethodResult]  # pooled over the seeds, per (method, budget)
    budget: float
    curve_png: Path
    curve_csv: Path
    modes_csv: Path


def _seed_outcomes(settings: Settings, seed: int, *, days: float, step_ms: int,
                   console: Console) -> list[Outcomes]:  # fmt: skip
    from plantlake.ingest.filters import load_filter_config
    from plantlake.models.jobs.train import TrainingInputs, labelled_rows, policy_for
    from plantlake.simulator.plant_history import plant_history

    began = time.monotonic()
    models = settings.models
    history = plant_history(
        seed, load_filter_config(settings.edge.filters), days=days, step_ms=step_ms,
        feature_step_ms=models.feature_step_minutes * 60_000,
    )  # fmt: skip
    policy = policy_for(models)
    cutoff = int(history.features["feature_time_ms"].max())
    inputs = TrainingInputs(history.features, history.events, versions={})
    rows = labelled_rows(inputs, models, policy=policy, cutoff_ms=cutoff)
    train = rows[rows["split"] == TRAIN]
    holdout = rows[rows["split"] == VALIDATION].reset_index(drop=True)
    failures = history.events[history.events["event"] == "failure"]
    outcomes = budget_sweep(
        holdout, failures, scores=method_scores(train, holdout, seed=seed),
        horizon_ms=policy.horizon_ms, seed=seed,
    )  # fmt: skip
    counted = len(outcomes[0].failures) if outcomes else 0
    console.print(
        f"  seed {seed}: {history.checked:,} readings through silver's rules ({history.held:,} "
        f"held back), {len(history.features):,} feature rows, {len(train):,} training rows "
        f"({int(train['label'].sum())} positive), holdout {len(holdout):,} rows with {counted} "
        f"failures ({time.monotonic() - began:.0f} s)"
    )
    return outcomes


def evaluate_plants(
    settings: Settings,
    console: Console,
    *,
    seeds: Sequence[int],
    days: float,
    step_ms: int,
    out_dir: Path,
    budget: float | None = None,
) -> Evaluation:
    """Evaluate every method on `seeds` plants of `days` each; print the tables, write the
    budget curves (PNG and CSV) and the per-mode table (CSV) to `out_dir`."""
    from plantlake.models.jobs.evaluation_plot import plot_budget_curves

    budget = settings.models.alert_budget if budget is None else budget
    budgets = tuple(sorted({*BUDGETS, budget}))
    console.print(
        f"evaluating on {len(seeds)} simulated plants (seeds {', '.join(map(str, seeds))}), "
        f"{days:g} days each, a reading every {step_ms / 60_000:g} min; budgets "
        f"{budgets[0]:.0%}..{budgets[-1]:.0%}"
    )
    outcomes: list[Outcomes] = []
    for seed in seeds:
        outcomes += [
            o for o in _seed_outcomes(settings, seed, days=days, step_ms=step_ms, console=console)
            if o.budget in budgets
        ]  # fmt: skip
    results = summaries(outcomes)
    at_budget = [r for r in results if math.isclose(r.budget, budget)]
    console.print(method_table(at_budget, title=f"every method at a {budget:.0%} alert budget, "
                               f"seeds {', '.join(map(str, seeds))} pooled"))  # fmt: skip
    console.print(modes_table(at_budget, budget))
    console.print(curve_table(results))
    out_dir.mkdir(parents=True, exist_ok=True)
    curve = budget_curve(results)
    paths = (out_dir / "budget_curves.png", out_dir / "budget_curves.csv", out_dir / "modes.csv")
    plot_budget_curves(
        curve, paths[0], title=f"Every method at the same alert budget (seeds {list(seeds)})"
    )
    curve.to_csv(paths[1], index=False)
    mode_table(results).to_csv(paths[2], index=False)
    pooled = {o.method: o for o in pool(outcomes) if math.isclose(o.budget, budget)}
    console.print(verdict(at_budget, pooled))
    console.print(f"budget curves: {paths[0]}; tables: {paths[1]}, {paths[2]}")
    return Evaluation(results, budget, *paths)


def verdict(results: Sequence[MethodResult], pooled: Mapping[str, Outcomes]) -> str:
    """Whether the failure predictor beats each baseline on recall and on median lead time,
    over the failures each caught and over the failures both caught."""
    by_name = {r.method: r for r in results}
    ours = by_name.get(FAILURE_PREDICTOR)
    if ours is None:
        return "no failure predictor result"
    lines = []
    for name in BASELINES:
        base = by_name.get(name)
        if base is None:
            continue
        if ours.recall_ci[0] > base.recall_ci[1]:
            recall = "higher, intervals apart"
        elif ours.recall > base.recall:
            recall = "higher, intervals overlap"
        else:
            recall = "not higher"
        lead = "longer" if ours.median_lead_time_h > base.median_lead_time_h else "not longer"
        n, mine, theirs = paired_lead_times(pooled[FAILURE_PREDICTOR], pooled[name])
        lines.append(
            f"failure predictor vs {name}: recall {ours.recall:.2f} vs {base.recall:.2f} "
            f"({recall}); median lead time {ours.median_lead_time_h:.1f} h vs "
            f"{base.median_lead_time_h:.1f} h ({lead}); on the {n} failures both caught "
            f"{mine:.1f} h vs {theirs:.1f} h"
        )
    return "\n".join(lines)
