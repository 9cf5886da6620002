"""What every workbench route shares (workbench layer): templates, the logged-in user and role
checks, CSRF checks for POSTs, the lake tables a page read, and `render`."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from plantlake.workbench.auth import User, csrf_matches, new_csrf_token

if TYPE_CHECKING:
    from plantlake.core.config import Settings
    from plantlake.lake import TableInfo
    from plantlake.workbench.review_store import ReviewStore

log = logging.getLogger(__name__)
# Who decided what, on which reading, and when: one line per decision (the table keeps it too).
audit = logging.getLogger("plantlake.audit")

TEMPLATES_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def format_utc(value: datetime | None, seconds: bool = True) -> str:
    """A time as pages show it: UTC, like every time in the lake ("—" for none)."""
    if value is None:
        return "—"
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


templates.env.filters["utc"] = format_utc

# The pages in the nav bar, in order: (path, label).
NAV = (
    ("/quarantine", "Quarantine"),
    ("/twin", "Twin"),
    ("/work-orders", "Work orders"),
    ("/live", "Live"),
)

# Session keys (the session is a signed cookie: keep it small, never a secret in it).
SESSION_USER = "user"
SESSION_CSRF = "csrf"
SESSION_FLASH = "flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(Exception):
    """Raised by `current_user` when nobody is logged in; the app turns it into a redirect to
    /login (or, for an HTMX request, a 401 with `HX-Redirect` so the whole page goes there)."""

    def __init__(self, next_url: str):
        super().__init__(next_url)
        self.next_url = next_url


def get_settings(request: Request) -> Settings:
    """The app's settings (FastAPI dependency); `create_app` puts them on `app.state`."""
    settings: Settings = request.app.state.settings
    return settings


def review_store(request: Request) -> ReviewStore:
    """The app's one ReviewStore (decisions and work-order feedback), made by `create_app`."""
    store: ReviewStore = request.app.state.review_store
    return store


def is_htmx(request: Request) -> bool:
    """True for a request htmx sent (it swaps a fragment, not the whole page)."""
    return request.headers.get("HX-Request") == "true"


def session_user(request: Request) -> User | None:
    """The logged-in user, or None. The role comes from the settings on every request, so a
    user removed or demoted in the settings loses access without waiting for the cookie."""
    name = request.session.get(SESSION_USER)
    if not isinstance(name, str):
        return None
    account = get_settings(request).workbench.users.get(name)
    if account is None:
        return None
    return User(name=name, role=account.role)


def current_user(request: Request) -> User:
    """FastAPI dependency: the logged-in user; raises `LoginRequired` when there is none."""
    user = session_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return user


def planner(request: Request) -> User:
    """FastAPI dependency: the logged-in user if they may decide (role planner), else 403."""
    user = current_user(request)
    if not user.can_decide:
        raise HTTPException(403, "Only planners decide; you are logged in as a viewer.")
    return user


def csrf_token(request: Request) -> str:
    """This session's CSRF token, created on first use (also before login, for the login form)."""
    token = request.session.get(SESSION_CSRF)
    if not isinstance(token, str) or not token:
        token = new_csrf_token()
        request.session[SESSION_CSRF] = token
    return token


async def csrf_checked(request: Request) -> None:
    """FastAPI dependency for every POST: the form field `csrf_token` or the `X-CSRF-Token`
    header (htmx sends it from `hx-headers` on <body>) must match the session's token; 403 if
    not."""
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        form = await request.form()  # Starlette caches it, so the route still gets its fields
        value = form.get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    expected = request.session.get(SESSION_CSRF)
    if not csrf_matches(expected if isinstance(expected, str) else None, submitted):
        log.warning("CSRF check failed for %s %s", request.method, request.url.path)
        raise HTTPException(
            403, "The form's security token is missing or expired; reload the page."
        )


def login_url(next_url: str) -> str:
    """/login with the page to return to (a local path only, see `safe_next`)."""
    return f"/login?next={quote(safe_next(next_url), safe='/')}"


def safe_next(next_url: str | None) -> str:
    """Where to go after login: a local path, never another site (an open redirect)."""
    if (
        not next_url
        or not next_url.startswith("/")
        or next_url.startswith("//")
        or "\\" in next_url
    ):
        return "/quarantine"
    return next_url


def flash(request: Request, message: str) -> None:
    """A message for the next page this session renders (after a POST that redirects)."""
    request.session[SESSION_FLASH] = message


def tables_read(names: Iterable[str], *, settings: Settings) -> list[TableInfo]:
    """The version and commit time of each lake table a page read, for its footer; a table
    not written yet is left out."""
    from plantlake.lake import table_info

    infos = (table_info(name, settings=settings) for name in names)
    return [info for info in infos if info is not None]


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    tables: list[TableInfo],
    status_code: int = 200,
) -> HTMLResponse:
    """Render a template with what base.html needs: the user, the CSRF token, the nav, a
    flashed message (shown once) and the tables the page read (footer)."""
    full = {
        "user": session_user(request),
        "csrf_token": csrf_token(request),
        "nav": NAV,
        "tables": tables,
        "flash": request.session.pop(SESSION_FLASH, None),
        **context,
    }
    return templates.TemplateResponse(request, template, full, status_code=status_code)
