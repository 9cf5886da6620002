"""Work orders as the pages show them: the list with its filter, an order's evidence made
readable, its risk-score trend against the alert threshold, and planner feedback (workbench
layer, pure view-model logic over frames already read)."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from plantlake.core.contracts import ACKNOWLEDGED, DONE, FALSE_ALARM, FEEDBACK_VERDICTS
from plantlake.workbench.charts import Frame, finite_points, polyline, segments
from plantlake.workbench.display import format_time, number, text, to_ms

OPEN, CLOSED, ALL = "open", "closed", "all"
STATUS_FILTERS = (OPEN, CLOSED, ALL)
VERDICT_LABELS = {ACKNOWLEDGED: "Acknowledged", FALSE_ALARM: "False alarm", DONE: "Done"}
NOTE_MAX_CHARS = 2000
FEEDBACK_ID = re.compile(r"fb-[0-9a-f]{32}")
# How far before the opening alert the risk trend starts: the run-up a planner wants to see.
TREND_LEAD_MS = 3 * 24 * 3600_000


def new_feedback_id() -> str:
    """The id a feedback form carries from the moment it is rendered, so submitting it twice
    (a double click, a resent POST) records one verdict."""
    return f"fb-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class OrderFilter:
    status: str = OPEN
    asset: str | None = None


def order_filter(status: str | None, asset: str | None) -> OrderFilter:
    """The list's filter from query parameters; an unknown status falls back to open orders."""
    chosen = status if status in STATUS_FILTERS else OPEN
    return OrderFilter(chosen, (asset or "").strip() or None)


@dataclass(frozen=True)
class OrderRow:
    work_order_id: str
    asset: str
    asset_class: str | None
    failure_mode: str
    status: str
    opened_ms: int | None
    latest_ms: int | None
    latest_score: float | None
    threshold: float | None
    alert_count: int
    model_name: str | None
    model_version: str | None
    horizon_hours: float | None
    closed_ms: int | None
    closed_reason: str | None
    evidence: str | None
    verdict: str | None = None  # the latest planner feedback, if any
    verdict_by: str | None = None

    @property
    def opened_text(self) -> str:
        return format_time(self.opened_ms)

    @property
    def latest_text(self) -> str:
        return format_time(self.latest_ms)

    @property
    def closed_text(self) -> str:
        return format_time(self.closed_ms)

    @property
    def verdict_label(self) -> str:
        return VERDICT_LABELS.get(self.verdict or "", "none yet")


def _order(row: Mapping[str, Any]) -> OrderRow:
    return OrderRow(
        work_order_id=str(row["work_order_id"]),
        asset=str(row["asset"]),
        asset_class=text(row.get("asset_class")),
        failure_mode=text(row.get("failure_mode")) or "-",
        status=text(row.get("status")) or "-",
        opened_ms=to_ms(row.get("opened_at")) or to_ms(row.get("opened_feature_time_ms")),
        latest_ms=to_ms(row.get("latest_feature_time_ms")),
        latest_score=number(row.get("latest_score")),
        threshold=number(row.get("threshold")),
        alert_count=int(number(row.get("alert_count")) or 0),
        model_name=text(row.get("model_name")),
        model_version=text(row.get("model_version")),
        horizon_hours=number(row.get("horizon_hours")),
        closed_ms=to_ms(row.get("closed_at")) or to_ms(row.get("closed_event_time_ms")),
        closed_reason=text(row.get("closed_reason")),
        evidence=text(row.get("evidence")),
    )


def latest_verdicts(feedback: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """work_order_id -> (verdict, planner) of its newest feedback."""
    if feedback.empty:
        return {}
    newest = feedback.sort_values("decided_at_ms").drop_duplicates("work_order_id", keep="last")
    return {
        str(r["work_order_id"]): (str(r["verdict"]), str(r["planner"]))
        for r in newest.to_dict("records")
    }


def order_rows(orders: pd.DataFrame, feedback: pd.DataFrame, chosen: OrderFilter) -> list[OrderRow]:
    """The orders the filter selects, each with its latest verdict: open ones first, then newest
    opened first."""
    verdicts = latest_verdicts(feedback)
    rows = []
    for record in orders.to_dict("records"):
        row = _order(record)
        if chosen.status != ALL and row.status != chosen.status:
            continue
        if chosen.asset is not None and row.asset != chosen.asset:
            continue
        verdict, planner = verdicts.get(row.work_order_id, (None, None))
        rows.append(_with_verdict(row, verdict, planner))
    rows.sort(key=lambda r: (r.status != OPEN, -(r.opened_ms or 0), r.asset))
    return rows


def _with_verdict(row: OrderRow, verdict: str | None, planner: str | None) -> OrderRow:
    return replace(row, verdict=verdict, verdict_by=planner)


def find_order(orders: pd.DataFrame, work_order_id: str, feedback: pd.DataFrame) -> OrderRow | None:
    """One order by id, with its latest verdict; None when there is no such order."""
    match = orders[orders["work_order_id"] == work_order_id] if not orders.empty else orders
    if match.empty:
        return None
    verdict, planner = latest_verdicts(feedback).get(work_order_id, (None, None))
    return _with_verdict(_order(match.iloc[0].to_dict()), verdict, planner)


def asset_choices(orders: pd.DataFrame) -> list[str]:
    return sorted(orders["asset"].dropna().astype(str).unique()) if not orders.empty else []


# Evidence -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceView:
    """gold.work_orders.evidence for people: the headline facts, the signature features of each
    failure mode, the 24 h trends, the other features, and the JSON itself (pretty)."""

    facts: tuple[tuple[str, str], ...]
    signatures: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    trends: tuple[tuple[str, str], ...]
    features: tuple[tuple[str, str], ...]
    pretty: str
    problem: str | None = None


def _shown(value: Any) -> str:
    if value is None:
        return "no data"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.4g}"


def _pairs(values: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(values, Mapping):
        return ()
    return tuple((str(k), _shown(v)) for k, v in sorted(values.items()))


def evidence_view(evidence: str | None) -> EvidenceView:
    """Render the evidence JSON (models.logic.work_orders.evidence) readably. Anything that is
    not the expected shape is still shown, as text, with what was wrong."""
    if not evidence:
        return EvidenceView((), (), (), (), "", "this order carries no evidence")
    try:
        body = json.loads(evidence)
    except ValueError as exc:
        return EvidenceView((), (), (), (), evidence, f"the evidence is not JSON ({exc})")
    if not isinstance(body, Mapping):
        return EvidenceView((), (), (), (), evidence, "the evidence is not a JSON object")
    horizon = body.get("horizon_hours")
    facts = (
        ("Model", f"{body.get('model_name', '-')} v{body.get('model_version', '-')} "
                  f"({body.get('model_kind', '-')})"),
        ("Failure mode", str(body.get("failure_mode", "-"))),
        ("Score", _shown(body.get("score"))),
        ("Threshold", _shown(body.get("threshold"))),
        ("Horizon", "-" if horizon is None else f"{_shown(horizon)} h"),
        ("Feature time", str(body.get("feature_time", "-"))),
    )  # fmt: skip
    raw_signatures = body.get("signatures")
    signatures = tuple(
        (str(mode), _pairs(values))
        for mode, values in sorted(
            raw_signatures.items() if isinstance(raw_signatures, Mapping) else ()
        )
    )
    in_signatures = {name for _, pairs in signatures for name, _ in pairs}
    raw_features = body.get("features")
    features = tuple(
        pair for pair in _pairs(raw_features if isinstance(raw_features, Mapping) else {})
        if pair[0] not in in_signatures
    )  # fmt: skip
    pretty = json.dumps(body, indent=2, sort_keys=True)
    return EvidenceView(facts, signatures, _pairs(body.get("trends_24h")), features, pretty)


# Risk trend -----------------------------------------------------------------------------------


# Margins of the trend's plot area: room for the axis labels.
_LEFT, _TOP, _RIGHT, _BOTTOM = 48, 10, 12, 28


@dataclass(frozen=True)
class RiskChart:
    """The risk score of an order's model for its asset over time, with the alert threshold.
    Coordinates are inside the plot area (the template offsets it by `left`, `top`)."""

    width: int
    height: int
    left: int
    top: int
    lines: tuple[str, ...]
    alerts: tuple[tuple[float, float], ...]  # points at or above the threshold
    threshold_y: float | None
    threshold: float | None
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]
    markers: tuple[tuple[float, str], ...]  # opened / closed, as vertical lines
    points: int

    @property
    def empty(self) -> bool:
        return self.points == 0

    @property
    def inner_width(self) -> int:
        return self.width - self.left - _RIGHT

    @property
    def inner_height(self) -> int:
        return self.height - self.top - _BOTTOM


def risk_series(predictions: pd.DataFrame, *, model_name: str | None) -> list[tuple[float, float]]:
    """(feature time ms, score) of one model's predictions, one per feature time (the latest
    scored when several model versions scored the same time)."""
    if predictions.empty:
        return []
    frame = predictions
    if model_name is not None:
        frame = frame[frame["model_name"] == model_name]
    if "scored_at" in frame.columns:
        frame = frame.sort_values("scored_at", kind="stable")
    latest: dict[int, float | None] = {}
    for when, score in frame[["feature_time_ms", "score"]].itertuples(index=False):
        if (at := to_ms(when)) is not None:
            latest[at] = number(score)
    return finite_points(latest.items())


def risk_chart(
    series: list[tuple[float, float]],
    *,
    threshold: float | None,
    opened_ms: int | None = None,
    closed_ms: int | None = None,
    width: int = 720,
    height: int = 220,
    max_gap_ms: float = 30 * 60_000,
) -> RiskChart:
    """The trend's geometry: the score line (broken where scoring paused), the points at or above
    the threshold, a horizontal threshold line, axis ticks, and the opening/closing times."""
    left, top = _LEFT, _TOP
    inner_w, inner_h = width - left - _RIGHT, height - top - _BOTTOM
    if not series:
        return RiskChart(width, height, left, top, (), (), None, threshold, (), (), (), 0)
    scores = [y for _, y in series] + ([threshold] if threshold is not None else [])
    low, high = min(0.0, *scores), max(scores)
    high = high + (high - low) * 0.08 if high > low else low + 1.0
    x0, x1 = series[0][0], series[-1][0]
    if x0 == x1:
        x0, x1 = x0 - 3600_000, x1 + 3600_000
    frame = Frame(x0, x1, low, high, inner_w, inner_h, pad=0)
    lines = tuple(polyline(run if len(run) > 1 else run * 2, frame)
                  for run in segments(series, max_gap=max_gap_ms))  # fmt: skip
    alerts = tuple(
        (frame.x(x), frame.y(y)) for x, y in series if threshold is not None and y >= threshold
    )
    # Rounded to the span's precision, so float noise (5.55e-17 for a 0) never shows.
    digits = max(0, 2 - math.floor(math.log10(high - low)))
    y_ticks = tuple(
        (frame.y(v), f"{round(v, digits) + 0.0:g}") for v in (low, (low + high) / 2, high)
    )
    x_ticks = tuple(
        (frame.x(x0 + (x1 - x0) * share), format_time(int(x0 + (x1 - x0) * share))[5:16])
        for share in (0.0, 0.5, 1.0)
    )
    markers = tuple(
        (frame.x(at), label)
        for at, label in ((opened_ms, "opened"), (closed_ms, "closed"))
        if at is not None and x0 <= at <= x1
    )
    return RiskChart(
        width, height, left, top, lines, alerts,
        None if threshold is None else frame.y(threshold), threshold,
        y_ticks, x_ticks, markers, len(series),
    )  # fmt: skip


# Feedback -------------------------------------------------------------------------------------


class FeedbackInvalid(ValueError):
    """A feedback form that cannot be recorded; the message says why, for the planner."""


@dataclass(frozen=True)
class FeedbackInput:
    feedback_id: str
    verdict: str
    note: str | None


def parse_feedback(form: Mapping[str, Any]) -> FeedbackInput:
    """The planner's verdict from the submitted form. `done` needs a note (what was done is the
    label's evidence); other notes are optional. Raises FeedbackInvalid."""
    feedback_id = str(form.get("feedback_id") or "")
    verdict = str(form.get("verdict") or "")
    note = str(form.get("note") or "").strip()
    if not FEEDBACK_ID.fullmatch(feedback_id):
        raise FeedbackInvalid("The form has no valid feedback id; reload the page and try again.")
    if verdict not in FEEDBACK_VERDICTS:
        raise FeedbackInvalid(f"Choose one of: {', '.join(VERDICT_LABELS.values())}.")
    if len(note) > NOTE_MAX_CHARS:
        raise FeedbackInvalid(f"The note is longer than {NOTE_MAX_CHARS} characters.")
    if verdict == DONE and not note:
        raise FeedbackInvalid("Say in the note what was done.")
    return FeedbackInput(feedback_id, verdict, note or None)


@dataclass(frozen=True)
class FeedbackRow:
    feedback_id: str
    verdict: str
    note: str | None
    planner: str
    decided_ms: int | None

    @property
    def label(self) -> str:
        return VERDICT_LABELS.get(self.verdict, self.verdict)

    @property
    def decided_text(self) -> str:
        return format_time(self.decided_ms)


def feedback_rows(feedback: pd.DataFrame, work_order_id: str) -> list[FeedbackRow]:
    """The feedback recorded on one order, newest first."""
    if feedback.empty:
        return []
    mine = feedback[feedback["work_order_id"] == work_order_id]
    rows = [
        FeedbackRow(
            feedback_id=str(r["feedback_id"]),
            verdict=str(r["verdict"]),
            note=text(r.get("note")),
            planner=str(r["planner"]),
            decided_ms=to_ms(r.get("decided_at_ms")) or to_ms(r.get("decided_at")),
        )
        for r in mine.to_dict("records")
    ]
    rows.sort(key=lambda r: r.decided_ms or 0, reverse=True)
    return rows
