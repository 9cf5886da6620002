"""The pipeline-health page (/live) and what it reads: status files under $PLANTLAKE_HOME/run,
the edge buffers (read-only) and a few lake tables (workbench layer, routes and their reads;
/metrics reads through `pipeline_health` too)."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from plantlake.core.clock import now_ms
from plantlake.core.config import Settings
from plantlake.core.errors import PlantlakeError
from plantlake.ingest.buffer import read_pending
from plantlake.workbench.auth import User
from plantlake.workbench.deps import current_user, get_settings, render, tables_read
from plantlake.workbench.live_views import (
    PipelineHealth,
    edge_rows,
    job_rows,
    quarantine_rates,
)
from plantlake.workbench.twin_views import twin_overview

log = logging.getLogger(__name__)
router = APIRouter()
T = TypeVar("T")

LIVE_TABLES = ("silver.dq_metrics", "gold.twin_state", "silver.quarantine")
# Enough silver.dq_metrics rows for the recent batches of every rule (a batch has one per rule).
DQ_ROWS = 2_000
OPEN_REVIEW = "review_status IS NULL OR review_status = 'open'"


def run_dir(settings: Settings) -> Path:
    return settings.home / "run"


def read_json(path: Path) -> dict[str, Any] | None:
    """A status file's JSON object; None when it is missing, half written or not an object."""
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def forwarder_statuses(settings: Settings) -> dict[str, tuple[dict | None, int | None]]:
    """node -> (forwarder status JSON, file mtime ms) of `run/forwarder-<node>.json`."""
    found: dict[str, tuple[dict | None, int | None]] = {}
    for path in sorted(run_dir(settings).glob("forwarder-*.json")):
        with contextlib.suppress(OSError):
            mtime_ms = int(path.stat().st_mtime * 1000)
            found[path.stem.removeprefix("forwarder-")] = (read_json(path), mtime_ms)
    return found


def buffer_pending(path: Path) -> tuple[int, int | None] | None:
    """(records waiting, oldest creation ms) of an edge buffer, read without taking the edge's
    write lock; None when it cannot be read."""
    try:
        return read_pending(path)
    except (sqlite3.Error, OSError, ValueError, TypeError) as exc:
        log.debug("edge buffer %s not readable: %s", path, exc)
        return None


def edge_buffers(settings: Settings) -> dict[str, tuple[int, int | None] | None]:
    """node -> buffer_pending of every `<node>.sqlite` under the edge buffer folder."""
    folder = settings.edge_buffer
    if not folder.is_dir():
        return {}
    return {path.stem: buffer_pending(path) for path in sorted(folder.glob("*.sqlite"))}


def job_progress(settings: Settings) -> list[dict[str, Any]]:
    """Every `run/job-<job>.json` progress file that reads as JSON (the job name from the file
    when the JSON lacks it)."""
    found = []
    for path in sorted(run_dir(settings).glob("job-*.json")):
        progress = read_json(path)
        if progress is not None:
            found.append({"job": path.stem.removeprefix("job-"), **progress})
    return found


def hot_path_status(settings: Settings) -> dict[str, Any] | None:
    # Where app/jobs.py's hot_path_status_file puts it (the app layer is above this one).
    return read_json(run_dir(settings) / f"hot-path-{settings.hot_path.group_id}.json")


def _lake(read: Callable[[], T], name: str, errors: list[str]) -> T | None:
    """A lake read that may fail (MinIO down): the page says so instead of failing."""
    try:
        return read()
    except PlantlakeError as exc:
        log.warning("/live could not read %s: %s", name, exc)
        errors.append(f"{name}: {exc.message}")
        return None


def pipeline_health(settings: Settings, *, at_ms: int) -> PipelineHealth:
    """Everything /live and /metrics show, as of `at_ms`."""
    from plantlake.lake import read_table

    errors: list[str] = []

    def read(name: str, **options: Any) -> pd.DataFrame | None:
        return _lake(lambda: read_table(name, settings=settings, **options), name, errors)

    dq = read("silver.dq_metrics", order_by="batch_time DESC", limit=DQ_ROWS)
    twin = read("gold.twin_state")
    registry = read("reference.asset_registry")
    # A table not written yet reads as no rows: registry sensors then show as "no data".
    overview = (
        None if twin is None or registry is None else twin_overview(twin, registry, now_ms=at_ms)
    )
    waiting = read("silver.quarantine", columns=["kafka_offset"], where=OPEN_REVIEW)
    return PipelineHealth(
        now_ms=at_ms,
        edges=tuple(edge_rows(forwarder_statuses(settings), edge_buffers(settings), now_ms=at_ms)),
        jobs=tuple(
            job_rows(
                job_progress(settings),
                hot_path_status(settings),
                now_ms=at_ms,
                pipeline=settings.pipeline,
            )
        ),  # fmt: skip
        rates=quarantine_rates(dq) if dq is not None else quarantine_rates(pd.DataFrame()),
        twin=overview,
        quarantine_open=None if waiting is None else len(waiting),
        lake_errors=tuple(dict.fromkeys(errors)),
    )


def _context(settings: Settings) -> dict:
    return {
        "health": pipeline_health(settings, at_ms=now_ms()),
        "refresh_seconds": f"{settings.workbench.refresh_seconds:g}",
        "edge_buffer": settings.edge_buffer,
        "run_dir": run_dir(settings),
    }


@router.get("/live", response_class=HTMLResponse)
def live_page(
    request: Request,
    user: Annotated[User, Depends(current_user)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Response:
    context = _context(settings)
    tables = _lake(lambda: tables_read(LIVE_TABLES, settings=settings), "lake", []) or []
    return render(request, "live.html", context, tables=tables)


@router.get("/live/rows", response_class=HTMLResponse)
def live_rows(
    request: Request,
    user: Annotated[User, Depends(current_user)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Response:
    """The part of /live that htmx replaces every `workbench.refresh_seconds`."""
    return render(request, "live_rows.html", _context(settings), tables=[])
