"""Login and logout of the workbench (workbench layer): local users from the settings, a CSRF
token from before the session, and a new session (and token) at every login."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from plantlake.workbench.auth import authenticate, new_csrf_token
from plantlake.workbench.deps import (
    SESSION_CSRF,
    SESSION_USER,
    csrf_checked,
    get_settings,
    render,
    safe_next,
    session_user,
)

log = logging.getLogger(__name__)
audit = logging.getLogger("plantlake.audit")
router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/quarantine") -> Response:
    if session_user(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next), "error": None}, tables=[])


@router.post("/login", dependencies=[Depends(csrf_checked)])
def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/quarantine",
) -> Response:
    users = get_settings(request).workbench.users
    user = authenticate(users, username, password)
    client = request.client.host if request.client else "?"
    if user is None:
        # The same answer for an unknown user and a wrong password: no user enumeration.
        log.warning("Failed workbench login for user %r from %s", username[:64], client)
        context = {"next": safe_next(next), "error": "Unknown user or wrong password."}
        return render(request, "login.html", context, tables=[], status_code=401)
    # A fresh session: whatever the cookie held before login (a planted session) is dropped.
    request.session.clear()
    request.session[SESSION_USER] = user.name
    request.session[SESSION_CSRF] = new_csrf_token()
    audit.info("login: %s (%s) from %s", user.name, user.role, client)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(csrf_checked)])
def logout(request: Request) -> Response:
    user = session_user(request)
    request.session.clear()
    if user is not None:
        audit.info("logout: %s", user.name)
    return RedirectResponse("/login", status_code=303)
