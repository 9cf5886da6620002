"""The quarantine queue, a reading's page and the planners' decisions on them (workbench layer).

Decisions go to silver.quarantine_reviews only (through ReviewStore); the silver job applies
them. Each form carries a decision id made when the page was rendered, so a double submit
inserts once, and what the page showed (`supersedes`, or a bulk set's digest), so a decision
on a reading that changed since is refused with 409.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from plantlake.core.contracts import NOTE, RELEASE, REVIEW_DECISIONS, REVIEW_STATUS
from plantlake.workbench import quarantine_reads as reads
from plantlake.workbench.auth import User
from plantlake.workbench.deps import (
    csrf_checked,
    current_user,
    flash,
    get_settings,
    is_htmx,
    planner,
    render,
    review_store,
    safe_next,
    tables_read,
)
from plantlake.workbench.plots import sensor_window_svg, svg_data_uri
from plantlake.workbench.quarantine_views import (
    MAX_BULK,
    STATUS_FILTERS,
    FilterError,
    QueueRow,
    bulk_decision_id,
    bulk_digest,
    bulk_targets,
    is_bulk_id,
    is_topic,
    page_of,
    parse_filter,
    refusal,
    rule_limits,
)
from plantlake.workbench.review_store import Decision, ReadingKey, StaleDecision

log = logging.getLogger(__name__)
audit = logging.getLogger("plantlake.audit")
router = APIRouter()

_DECISION_ID = re.compile(r"[0-9a-f]{32}")
MAX_NOTE = 2_000
QUEUE_TABLES = (reads.QUARANTINE, reads.REVIEWS)
READING_TABLES = (reads.QUARANTINE, reads.REVIEWS, reads.TELEMETRY, reads.UNITS)


def new_id() -> str:
    """A decision id for a form being rendered."""
    return uuid.uuid4().hex


def _message(request: Request, status: int, title: str, text: str, back: str) -> HTMLResponse:
    context = {"title": title, "message": text, "back": safe_next(back)}
    return render(request, "message.html", context, tables=[], status_code=status)


def _checked_note(decision: str, note: str) -> str | None:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise HTTPException(400, f"A note has at most {MAX_NOTE} characters.")
    if decision == NOTE and not note:
        raise HTTPException(400, "A note needs its text.")
    return note or None


def _checked_decision(decision: str) -> str:
    if decision not in REVIEW_DECISIONS:
        raise HTTPException(400, f"Unknown decision {decision!r}; one of {list(REVIEW_DECISIONS)}.")
    return decision


def _audit(user: User, decisions: Sequence[Decision]) -> None:
    for d in decisions:
        r = d.reading
        audit.info(
            "decision %s by %s: %s on reading %s/%s/%s (%s %s)%s", d.decision_id, user.name,
            d.decision, r.kafka_topic, r.kafka_partition, r.kafka_offset, d.asset, d.sensor,
            f" note={d.note!r}" if d.note else "",
        )  # fmt: skip


def _done(decision: str, count: int) -> str:
    what = {RELEASE: "Released", NOTE: "Noted"}.get(decision, "Confirmed as a fault:")
    readings = "1 reading" if count == 1 else f"{count} readings"
    return f"{what} {readings}; pending in silver until its next micro-batch applies it."


@router.get("/quarantine", response_class=HTMLResponse)
def queue(request: Request, user: Annotated[User, Depends(current_user)]) -> Response:
    settings = get_settings(request)
    try:
        flt = parse_filter(request.query_params)
    except FilterError as exc:
        raise HTTPException(400, str(exc)) from exc
    rows = reads.load_queue(flt, settings=settings, store=review_store(request))
    page = page_of(rows, flt.page)
    bulk = None
    if user.can_decide and rows:
        releasable, refused = bulk_targets(rows, RELEASE)
        bulk = {
            "digest": bulk_digest(rows), "bulk_id": new_id(), "count": len(rows),
            "releasable": len(releasable), "refused": len(refused),
            "open": sum(1 for r in rows if r.review.status != REVIEW_STATUS[RELEASE]),
            "too_many": len(rows) > MAX_BULK,
        }  # fmt: skip
    query = flt.query()
    context = {
        "filter": flt, "page": page, "rules": reads.rule_names(), "statuses": STATUS_FILTERS,
        "bulk": bulk, "new_id": new_id, "refusal": refusal, "can_decide": user.can_decide,
        "back": "/quarantine" + (f"?{query}" if query else ""), "max_bulk": MAX_BULK,
    }  # fmt: skip
    partial = is_htmx(request) and request.headers.get("HX-Target") == "queue"
    template = "quarantine_rows.html" if partial else "quarantine.html"
    return render(request, template, context, tables=tables_read(QUEUE_TABLES, settings=settings))


@router.get("/quarantine/reading/{topic}/{partition}/{offset}", response_class=HTMLResponse)
def reading(
    request: Request, topic: str, partition: int, offset: int,
    user: Annotated[User, Depends(current_user)],
) -> Response:  # fmt: skip
    settings = get_settings(request)
    key = ReadingKey(topic, partition, offset)
    row = (
        reads.load_reading(key, settings=settings, store=review_store(request))
        if is_topic(topic)
        else None
    )
    if row is None:
        raise HTTPException(404, f"No quarantined reading {topic}/{partition}/{offset}.")
    table = reads.units(settings=settings)
    window = reads.sensor_window(row, settings=settings, table=table)
    limits = rule_limits(reads.rules().values(), row.rule_names, unit=window.unit, units=table)
    svg = sensor_window_svg(
        telemetry=window.telemetry, quarantined=window.quarantined, reading=window.reading,
        center_ms=row.event_time_ms, half_width_ms=int(reads.WINDOW.total_seconds() * 1000),
        limits=limits, unit=window.unit, title=f"{row.asset} · {row.sensor}",
    )  # fmt: skip
    context = {
        "row": row, "history": reads.decision_history(key, settings=settings),
        "plot": svg_data_uri(svg), "window": window, "limits": limits, "rules": reads.rules(),
        "decision_id": new_id(), "refusal": refusal, "can_decide": user.can_decide,
        "back": row.path,
    }  # fmt: skip
    tables = tables_read(READING_TABLES, settings=settings)
    return render(request, "reading.html", context, tables=tables)


@router.post("/quarantine/decide", dependencies=[Depends(csrf_checked)])
def decide(
    request: Request,
    user: Annotated[User, Depends(planner)],
    kafka_topic: Annotated[str, Form()],
    kafka_partition: Annotated[int, Form()],
    kafka_offset: Annotated[int, Form()],
    decision: Annotated[str, Form()],
    decision_id: Annotated[str, Form()],
    supersedes: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "/quarantine",
) -> Response:
    """One decision on one reading."""
    decision = _checked_decision(decision)
    text = _checked_note(decision, note)
    if not _DECISION_ID.fullmatch(decision_id):
        raise HTTPException(400, "The form has no valid decision id; reload the page.")
    key = ReadingKey(kafka_topic, kafka_partition, kafka_offset)
    settings, store = get_settings(request), review_store(request)
    row = reads.load_reading(key, settings=settings, store=store) if is_topic(kafka_topic) else None
    if row is None:
        raise HTTPException(
            404, f"No quarantined reading {kafka_topic}/{kafka_partition}/{kafka_offset}."
        )
    if row.review.decision_id == decision_id:
        flash(request, "Already recorded: this decision was saved before.")
        return RedirectResponse(safe_next(back), status_code=303)
    if reason := refusal(row, decision):
        raise HTTPException(400, f"Cannot {decision.replace('_', ' ')} {row.key_text}: {reason}.")
    made = Decision(
        decision_id=decision_id, reading=key, asset=row.asset, sensor=row.sensor,
        event_time_ms=row.event_time_ms, decision=decision, note=text, reviewer=user.name,
        supersedes=supersedes or None,
    )  # fmt: skip
    try:
        result = store.decide([made])
    except StaleDecision:
        return _stale(request, back, f"Reading {row.key_text} changed since you opened it")
    if result.inserted:
        _audit(user, [made])
        flash(request, _done(decision, 1))
    else:
        flash(request, "Already recorded: this decision was saved before.")
    return RedirectResponse(safe_next(back), status_code=303)


def _stale(request: Request, back: str, what: str) -> HTMLResponse:
    log.info("Refused a stale decision: %s", what)
    text = f"{what}: someone decided on it meanwhile. Reload to see its current state; nothing was saved."
    return _message(request, 409, "Changed since you opened it", text, back)


@router.post("/quarantine/bulk", dependencies=[Depends(csrf_checked)])
def bulk(
    request: Request,
    user: Annotated[User, Depends(planner)],
    decision: Annotated[str, Form()],
    bulk_id: Annotated[str, Form()],
    digest: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    rule: Annotated[str, Form()] = "",
    asset: Annotated[str, Form()] = "",
    sensor: Annotated[str, Form()] = "",
    line: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
    since: Annotated[str, Form()] = "",
    until: Annotated[str, Form()] = "",
) -> Response:
    """One decision on every reading of a filtered set, as the page showed it (all or none)."""
    decision = _checked_decision(decision)
    text = _checked_note(decision, note)
    if not is_bulk_id(bulk_id) or not digest:
        raise HTTPException(400, "The form has no valid bulk id or digest; reload the page.")
    fields = {"rule": rule, "asset": asset, "sensor": sensor, "line": line, "status": status,
              "since": since, "until": until}  # fmt: skip
    try:
        flt = parse_filter(fields)
    except FilterError as exc:
        raise HTTPException(400, str(exc)) from exc
    back = "/quarantine" + (f"?{flt.query()}" if flt.query() else "")
    settings, store = get_settings(request), review_store(request)
    rows = reads.load_queue(flt, settings=settings, store=store)
    if bulk_digest(rows) != digest:
        if recorded := reads.bulk_recorded(bulk_id, settings=settings):
            flash(
                request,
                f"Already recorded: this bulk decision ({recorded} readings) was saved before.",
            )
            return RedirectResponse(back, status_code=303)
        return _stale(request, back, "The filtered set changed since you opened the page")
    return _decide_bulk(
        request, user, rows, decision=decision, note=text, bulk_id=bulk_id, back=back
    )


def _decide_bulk(
    request: Request, user: User, rows: list[QueueRow], *, decision: str, note: str | None,
    bulk_id: str, back: str,
) -> Response:  # fmt: skip
    targets, refused = bulk_targets(rows, decision)
    if refused:
        raise HTTPException(400, f"{len(refused)} of these readings refuse it: {refusal(refused[0], decision)}. "
                                 "Narrow the filter (e.g. by rule) and decide those apart.")  # fmt: skip
    if not targets:
        raise HTTPException(
            400, "No reading in this set can take a decision (released readings are final)."
        )
    if len(targets) > MAX_BULK:
        raise HTTPException(
            400, f"{len(targets)} readings: at most {MAX_BULK} at once; narrow the filter."
        )
    decisions = [
        Decision(
            decision_id=bulk_decision_id(bulk_id, row.key), reading=row.key, asset=row.asset,
            sensor=row.sensor, event_time_ms=row.event_time_ms, decision=decision, note=note,
            reviewer=user.name, supersedes=row.review.decision_id,
        )
        for row in targets
    ]  # fmt: skip
    try:
        result = review_store(request).decide(decisions)
    except StaleDecision:
        return _stale(
            request, back, "A reading of the filtered set changed since you opened the page"
        )
    _audit(user, decisions)
    message = _done(decision, result.inserted)
    if result.duplicates:
        message += f" {result.duplicates} were already recorded."
    flash(request, message)
    return RedirectResponse(back, status_code=303)
