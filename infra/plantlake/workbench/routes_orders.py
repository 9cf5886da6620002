"""Work-order pages: the list, one order's evidence and risk trend, and planner feedback
(workbench layer, routes: read the lake, build the view model, render; feedback goes to
gold.work_order_feedback through the review store)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

import pandas as pd
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from plantlake.core.clock import now_ms
from plantlake.core.config import Settings
from plantlake.workbench.auth import User
from plantlake.workbench.deps import (
    audit,
    csrf_checked,
    current_user,
    get_settings,
    planner,
    render,
    tables_read,
)
from plantlake.workbench.order_views import (
    STATUS_FILTERS,
    TREND_LEAD_MS,
    VERDICT_LABELS,
    FeedbackInvalid,
    OrderRow,
    asset_choices,
    evidence_view,
    feedback_rows,
    find_order,
    new_feedback_id,
    order_filter,
    order_rows,
    parse_feedback,
    risk_chart,
    risk_series,
)
from plantlake.workbench.review_store import Feedback, ReviewStore

router = APIRouter()

LIST_TABLES = ("gold.work_orders", "gold.work_order_feedback")
DETAIL_TABLES = (*LIST_TABLES, "gold.predictions")
PREDICTION_COLUMNS = ("model_name", "feature_time_ms", "score", "scored_at")
# After a feedback POST, the detail page says what happened (?feedback=...).
FEEDBACK_MESSAGES = {
    "recorded": "Your feedback is recorded.",
    "duplicate": "This feedback was already recorded (the form was sent twice); it counts once.",
}


def _store(request: Request) -> ReviewStore:
    store: ReviewStore = request.app.state.review_store
    return store


def _orders(settings: Settings) -> pd.DataFrame:
    from plantlake.lake import read_table

    return read_table("gold.work_orders", settings=settings)


@router.get("/work-orders", response_class=HTMLResponse)
def orders_page(
    request: Request,
    user: Annotated[User, Depends(current_user)],
    settings: Annotated[Settings, Depends(get_settings)],
    status: str | None = None,
    asset: str | None = None,
) -> Response:
    orders = _orders(settings)
    chosen = order_filter(status, asset)
    context = {
        "rows": order_rows(orders, _store(request).feedback(), chosen),
        "chosen": chosen,
        "statuses": STATUS_FILTERS,
        "assets": asset_choices(orders),
        "total": len(orders),
    }
    return render(
        request, "work_orders.html", context, tables=tables_read(LIST_TABLES, settings=settings)
    )


def _detail(
    request: Request,
    settings: Settings,
    work_order_id: str,
    *,
    error: str | None = None,
    form: dict | None = None,
    status_code: int = 200,
) -> Response:
    from plantlake.lake import read_table

    feedback = _store(request).feedback()
    order = find_order(_orders(settings), work_order_id, feedback)
    if order is None:
        raise HTTPException(404, f"There is no work order {work_order_id} in gold.work_orders.")
    predictions = read_table(
        "gold.predictions",
        asset=order.asset,
        since=_trend_start(order),
        columns=PREDICTION_COLUMNS,
        settings=settings,
    )
    series = risk_series(predictions, model_name=order.model_name)
    context = {
        "order": order,
        "evidence": evidence_view(order.evidence),
        "chart": risk_chart(
            series, threshold=order.threshold, opened_ms=order.opened_ms, closed_ms=order.closed_ms
        ),
        "feedback": feedback_rows(feedback, order.work_order_id),
        "verdicts": VERDICT_LABELS,
        # A new id for every rendering: resubmitting this form records one verdict.
        "feedback_id": new_feedback_id(),
        "form": form or {},
        "error": error,
        "message": FEEDBACK_MESSAGES.get(request.query_params.get("feedback", "")),
    }
    tables = tables_read(DETAIL_TABLES, settings=settings)
    return render(request, "work_order.html", context, tables=tables, status_code=status_code)


def _trend_start(order: OrderRow) -> datetime:
    opened = order.opened_ms if order.opened_ms is not None else now_ms()
    return datetime.fromtimestamp((opened - TREND_LEAD_MS) / 1000, tz=UTC)


@router.get("/work-orders/{work_order_id}", response_class=HTMLResponse)
def order_page(
    request: Request,
    work_order_id: str,
    user: Annotated[User, Depends(current_user)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Response:
    return _detail(request, settings, work_order_id)


@router.post("/work-orders/{work_order_id}/feedback", dependencies=[Depends(csrf_checked)])
def post_feedback(
    request: Request,
    work_order_id: str,
    user: Annotated[User, Depends(planner)],
    settings: Annotated[Settings, Depends(get_settings)],
    feedback_id: Annotated[str, Form()] = "",
    verdict: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    """Record a planner's verdict on an order, then show the order again (303, so a reload does
    not resend the form). The form's feedback id makes a second submit a no-op."""
    form = {"feedback_id": feedback_id, "verdict": verdict, "note": note}
    try:
        entry = parse_feedback(form)
    except FeedbackInvalid as exc:
        return _detail(request, settings, work_order_id, error=str(exc), form=form, status_code=400)
    order = find_order(_orders(settings), work_order_id, pd.DataFrame())
    if order is None:
        raise HTTPException(404, f"There is no work order {work_order_id} in gold.work_orders.")
    recorded = _store(request).record_feedback(
        Feedback(
            feedback_id=entry.feedback_id,
            work_order_id=order.work_order_id,
            asset=order.asset,
            failure_mode=order.failure_mode,
            verdict=entry.verdict,
            note=entry.note,
            planner=user.name,
        )
    )
    audit.info(
        "work-order feedback %s by %s: %s on %s (%s)%s",
        entry.feedback_id, user.name, entry.verdict, order.work_order_id, order.asset,
        "" if recorded else ", already recorded",
    )  # fmt: skip
    outcome = "recorded" if recorded else "duplicate"
    return RedirectResponse(f"/work-orders/{quote(order.work_order_id)}?feedback={outcome}", 303)
