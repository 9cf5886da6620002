"""The twin overview page and the rows partial htmx polls (workbench layer, routes: read the
lake, build the view model, render)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from plantlake.core.clock import now_ms
from plantlake.core.config import Settings
from plantlake.workbench.auth import User
from plantlake.workbench.deps import current_user, get_settings, render, tables_read
from plantlake.workbench.twin_views import TREND_SPAN_MS, TwinOverview, twin_overview

router = APIRouter()

TWIN_TABLES = ("gold.twin_state", "reference.asset_registry", "gold.telemetry_1m")
TREND_COLUMNS = ("asset", "sensor", "window_start_ms", "mean")


def read_twin(settings: Settings, *, at_ms: int, trends: bool = True) -> TwinOverview:
    """The twin overview as of `at_ms`: gold.twin_state and the registry, and (when `trends`)
    the last two hours of gold.telemetry_1m in one read for every sensor."""
    from plantlake.lake import read_table

    twin = read_table("gold.twin_state", settings=settings)
    registry = read_table("reference.asset_registry", settings=settings)
    recent = None
    if trends:
        since = datetime.fromtimestamp((at_ms - TREND_SPAN_MS) / 1000, tz=UTC)
        recent = read_table(
            "gold.telemetry_1m", since=since, columns=TREND_COLUMNS, settings=settings
        )
    return twin_overview(twin, registry, recent, now_ms=at_ms)


def _context(settings: Settings) -> dict:
    return {
        "overview": read_twin(settings, at_ms=now_ms()),
        "refresh_seconds": f"{settings.workbench.refresh_seconds:g}",
    }


@router.get("/twin", response_class=HTMLResponse)
def twin_page(
    request: Request,
    user: Annotated[User, Depends(current_user)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Response:
    context = _context(settings)
    return render(request, "twin.html", context, tables=tables_read(TWIN_TABLES, settings=settings))


@router.get("/twin/rows", response_class=HTMLResponse)
def twin_rows(
    request: Request,
    user: Annotated[User, Depends(current_user)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Response:
    """The part of /twin that htmx replaces every `workbench.refresh_seconds`."""
    return render(request, "twin_rows.html", _context(settings), tables=[])
