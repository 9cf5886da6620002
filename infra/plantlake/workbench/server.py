"""The workbench web app (workbench layer): `create_app` wires sessions, security headers, static
files, error pages and every page's router; `serve` runs it with uvicorn on loopback."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from plantlake.core.config import Settings
from plantlake.core.errors import PlantlakeError
from plantlake.core.logging_setup import configure_logging, level_from_env
from plantlake.workbench import (
    metrics,
    routes_auth,
    routes_live,
    routes_orders,
    routes_quarantine,
    routes_twin,
)
from plantlake.workbench.deps import LoginRequired, is_htmx, login_url, render
from plantlake.workbench.review_store import ReviewStore

log = logging.getLogger(__name__)
AUDIT_LOGGER = "plantlake.audit"
STATIC_DIR = Path(__file__).parent / "static"
SESSION_COOKIE = "plantlake_session"

# Only this origin: no inline script, no framing, forms post only here. Images may be data:
# URIs, which is how the SVG plots travel (see plots.svg_data_uri).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_TITLES = {
    400: "Cannot do that", 403: "Not allowed", 404: "Not found",
    409: "Changed since you opened it", 503: "The lake cannot be reached",
}  # fmt: skip


def session_secret(settings: Settings) -> str:
    """The key that signs session cookies; a random one (logins end with the process) if unset."""
    secret = settings.workbench.session_secret.get_secret_value()
    if secret:
        return secret
    log.warning(
        "workbench.session_secret is not set: using a random one, so every login ends when the "
        "app restarts (set PLANTLAKE_WORKBENCH__SESSION_SECRET; `plantlake up` writes one)."
    )
    return secrets.token_urlsafe(32)


def create_app(settings: Settings) -> FastAPI:
    """The workbench app over `settings` (its lake, its users)."""
    app = FastAPI(title="plantlake workbench", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.review_store = ReviewStore(settings)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.workbench.session_hours * 3600),
        same_site="strict",  # the cookie is httponly (Starlette sets it always)
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _bad_form)  # type: ignore[arg-type]
    app.add_exception_handler(PlantlakeError, _lake_error)  # type: ignore[arg-type]
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (
        routes_auth,
        routes_quarantine,
        routes_twin,
        routes_orders,
        routes_live,
        metrics,
    ):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/quarantine", status_code=303)

    return app


def _login_required(request: Request, exc: LoginRequired) -> Response:
    target = login_url(exc.next_url)
    if is_htmx(request):
        # htmx would swap a redirect's page into a fragment; HX-Redirect moves the whole page.
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.detail)
    return _error_page(request, exc.status_code, str(exc.detail), exc.headers)


def _bad_form(request: Request, exc: RequestValidationError) -> Response:
    fields = ", ".join(str(e.get("loc", ("?",))[-1]) for e in exc.errors())
    return _error_page(request, 400, f"The form is missing or has bad fields: {fields}.", None)


def _lake_error(request: Request, exc: PlantlakeError) -> Response:
    # The lake's store down (SourceError, SinkError) or a bad contract: say what, not a trace.
    log.error("%s %s: %s", request.method, request.url.path, exc.for_user())
    return _error_page(request, 503, str(exc), None)


def _error_page(
    request: Request, status: int, text: str, headers: Mapping[str, str] | None
) -> Response:
    context = {
        "title": _TITLES.get(status, f"Error {status}"),
        "message": text,
        "back": "/quarantine",
    }
    response: HTMLResponse = render(request, "message.html", context, tables=[], status_code=status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Run the workbench until interrupted, on `settings.workbench.host:port` unless given.

    Logs go through plantlake's logging (UTC timestamps; the CLI sets the level); decisions
    (logger plantlake.audit) and uvicorn's start and stop lines are logged whatever the level.
    """
    import uvicorn

    if not logging.getLogger().handlers:
        configure_logging(level_from_env())
    for name in (AUDIT_LOGGER, "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.INFO)
    bind = host or settings.workbench.host
    if bind not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "The workbench listens on %s, beyond this machine: put it behind a TLS proxy.", bind
        )
    uvicorn.run(
        create_app(settings),
        host=bind,
        port=port or settings.workbench.port,
        log_config=None,  # no handlers of its own: its records reach plantlake's
        proxy_headers=False,  # a site's reverse proxy: see the README
        server_header=False,
    )
