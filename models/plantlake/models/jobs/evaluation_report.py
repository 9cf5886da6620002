"""The evaluation's tables for a terminal: every method at a budget with its intervals, recall per
failure mode, and the budget curve (models; rich tables of budget_evaluation results)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from rich.table import Table

from plantlake.models.logic.budget_evaluation import MethodResult


def _interval(value: float, ci: tuple[float, float], fmt: str) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:{fmt}} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def method_table(results: Sequence[MethodResult], *, title: str) -> Table:
    """Recall and median lead time with 95 % intervals, false alarms and precision per method."""
    table = Table(title=title)
    for name in ("method", "recall [95% CI]", "caught", "median lead time h [95% CI]",
                 "false alarms / asset-day", "precision", "alerts"):  # fmt: skip
        table.add_column(name)
    for r in results:
        table.add_row(
            r.method, _interval(r.recall, r.recall_ci, ".2f"), f"{r.caught}/{r.failures}",
            _interval(r.median_lead_time_h, r.median_lead_time_ci, ".1f"),
            f"{r.false_alarms_per_asset_day:.2f}", f"{r.precision:.2f}", str(r.alerts),
        )  # fmt: skip
    return table


def modes_table(results: Sequence[MethodResult], budget: float) -> Table:
    """Recall per failure mode and method: a method that only catches easy modes shows it."""
    modes = sorted({mode for r in results for mode in r.by_mode})
    table = Table(title=f"recall per failure mode at a {budget:.0%} budget (caught/failures)")
    table.add_column("method")
    for mode in modes:
        table.add_column(mode)
    for r in results:
        cells = []
        for mode in modes:
            m = r.by_mode.get(mode)
            cells.append("-" if m is None else f"{m.recall:.2f} ({m.caught}/{m.failures})")
        table.add_row(r.method, *cells)
    return table


def curve_table(results: Sequence[MethodResult]) -> Table:
    """Recall and median lead time of every method at each budget."""
    frame = pd.DataFrame([r.as_row() for r in results])
    table = Table(title="budget curve: recall / median lead time (h) per budget")
    budgets = sorted(frame["budget"].unique())
    table.add_column("method")
    for b in budgets:
        table.add_column(f"{b:.0%}")
    for method, rows in frame.groupby("method", sort=False):
        by_budget = rows.set_index("budget")
        cells = [
            f"{by_budget.at[b, 'recall']:.2f} / {by_budget.at[b, 'median_lead_time_h']:.0f}"
            if b in by_budget.index and not math.isnan(by_budget.at[b, "recall"]) else "-"
            for b in budgets
        ]  # fmt: skip
        table.add_row(str(method), *cells)
    return table
