"""Budget curves as a picture: recall and median lead time against the alert budget (models).

Reads nothing but a budget_curve table (models.logic.budget_evaluation) and writes one PNG.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_budget_curves(
    curve: pd.DataFrame, path: str | Path, *, title: str = "Every method at the same alert budget"
) -> Path:
    """Write two panels to `path` (PNG): recall vs budget and median lead time vs budget, one
    line per method with its 95 % bootstrap interval shaded. Returns the path written."""
    # A bare Figure renders with the Agg canvas and touches no pyplot state, so it is safe in a
    # headless job and in threads.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    recall_axes, lead_axes = figure.subplots(1, 2, sharex=True)
    for method, rows in curve.groupby("method", sort=False):
        rows = rows.sort_values("budget")
        budget = rows["budget"].to_numpy(dtype=float) * 100
        (line,) = recall_axes.plot(budget, rows["recall"], marker="o", label=str(method))
        colour = line.get_color()
        recall_axes.fill_between(
            budget, rows["recall_lo"].astype(float), rows["recall_hi"].astype(float),
            color=colour, alpha=0.2, linewidth=0,
        )  # fmt: skip
        lead_axes.plot(budget, rows["median_lead_time_h"], marker="o", color=colour)
        lead_axes.fill_between(
            budget, rows["lead_time_lo"].astype(float), rows["lead_time_hi"].astype(float),
            color=colour, alpha=0.2, linewidth=0,
        )  # fmt: skip
    recall_axes.set(xlabel="alert budget (% of asset-hours)", ylabel="recall", ylim=(0, 1.02))
    lead_axes.set(xlabel="alert budget (% of asset-hours)", ylabel="median lead time (h)")
    for axes in (recall_axes, lead_axes):
        axes.grid(alpha=0.3)
    recall_axes.legend(loc="lower right")
    figure.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120, format="png")
    return out
