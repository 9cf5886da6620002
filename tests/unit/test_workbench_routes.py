"""Issue 10: the workbench's login, roles, CSRF and quarantine decisions through FastAPI's
TestClient, over a file:// lake seeded with contract-shaped rows (no Spark, no services)."""

from __future__ import annotations

import logging
import re

import pytest

from plantlake.lake import read_table
from plantlake.workbench.review_store import Decision, ReadingKey, ReviewStore
from tests.unit.workbench_lake import (
    PASSWORDS,
    T0_MS,
    TOPIC,
    UNIT_ROWS,
    app_client,
    csrf_of,
    form_fields,
    login,
    quarantine_row,
    seed,
    telemetry_row,
    workbench_settings,
)

UNIT_FAILED = (("unit", "unit 'furlong' is not in reference.units"),)


@pytest.fixture
def settings(tmp_path):
    return workbench_settings(tmp_path)


@pytest.fixture
def lake(settings):
    """Two quarantined readings of one sensor (one too hot, one in an unknown unit), another
    sensor's reading, the units table and an hour of the sensor's good readings."""
    seed(settings, "silver.quarantine", [
        quarantine_row(offset=1),
        quarantine_row(offset=2, value=7.0, unit="furlong", event_time_ms=T0_MS - 60_000,
                       rules=UNIT_FAILED),
        quarantine_row(offset=3, sensor="flow", value=-5.0, unit="m3/h",
                       event_time_ms=T0_MS - 120_000,
                       rules=(("flow_plausible", "value -5 below min 0"),)),
    ])  # fmt: skip
    seed(settings, "reference.units", UNIT_ROWS)
    seed(settings, "silver.telemetry",
         [telemetry_row(event_time_ms=T0_MS - i * 60_000, value=60.0 + i % 3, offset=100 + i)
          for i in range(1, 61)])  # fmt: skip
    return settings


def reviews(settings) -> list[dict]:
    return read_table("silver.quarantine_reviews", settings=settings).to_dict("records")


def decide_form(client, offset: int, *, page: str = "/quarantine?status=all") -> dict[str, str]:
    """The hidden fields of a reading's decision form as the page rendered them."""
    forms = form_fields(client.get(page).text, "/quarantine/decide")
    return next(f for f in forms if f["kafka_offset"] == str(offset))


# -- access ------------------------------------------------------------------------------------


def test_every_page_needs_a_login(settings):
    client = app_client(settings)
    response = client.get("/quarantine?rule=unit")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/quarantine%3Frule%3Dunit"
    htmx = client.get("/quarantine", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    assert client.get("/").headers["location"] == "/quarantine"


def test_a_wrong_password_and_an_unknown_user_get_the_same_401(settings, caplog):
    client = app_client(settings)
    token = csrf_of(client.get("/login").text)
    answers = [
        client.post("/login", data={"username": user, "password": "wrong", "csrf_token": token})
        for user in ("planner", "nobody")
    ]
    assert [a.status_code for a in answers] == [401, 401]
    messages = [re.search(r'class="error"[^>]*>([^<]+)', a.text).group(1) for a in answers]
    assert messages[0] == messages[1] == "Unknown user or wrong password."
    assert "Failed workbench login for user 'nobody'" in caplog.text
    assert client.get("/quarantine").status_code == 303  # still logged out


def test_login_needs_its_csrf_token_and_returns_to_a_local_page_only(settings):
    client = app_client(settings)
    client.get("/login")
    form = {"username": "planner", "password": PASSWORDS["planner"]}
    assert client.post("/login", data=form).status_code == 403
    assert client.post("/login", data={**form, "csrf_token": "forged"}).status_code == 403
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={**form, "csrf_token": token, "next": "//evil.example/x"})
    assert answer.status_code == 303 and answer.headers["location"] == "/quarantine"


def test_login_starts_a_new_session_and_logout_ends_it(settings):
    client = app_client(settings)
    before = csrf_of(client.get("/login").text)
    after = login(client, "planner")
    assert after != before  # a token planted before login is worthless after it
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf_token": after}).headers["location"] == "/login"
    assert client.get("/quarantine").status_code == 303


def test_session_cookie_and_security_headers(settings):
    client = app_client(settings)
    response = client.get("/login")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"


def test_a_viewer_sees_the_queue_without_decide_buttons_and_cannot_decide(lake):
    planner = app_client(lake)
    login(planner, "planner")
    form = decide_form(planner, 1)
    viewer = app_client(lake)
    token = login(viewer, "viewer")
    page = viewer.get("/quarantine").text
    assert "plantlake.telemetry/0/1" in page
    assert 'action="/quarantine/decide"' not in page and 'action="/quarantine/bulk"' not in page
    detail = viewer.get("/quarantine/reading/plantlake.telemetry/0/1").text
    assert 'action="/quarantine/decide"' not in detail
    answer = viewer.post(
        "/quarantine/decide", data={**form, "csrf_token": token, "decision": "release"}
    )
    assert answer.status_code == 403
    assert reviews(lake) == []


@pytest.mark.parametrize("token", [None, "forged"])
def test_a_decision_without_the_sessions_csrf_token_is_refused(lake, token):
    client = app_client(lake)
    login(client, "planner")
    form = {**decide_form(client, 1), "decision": "release"}
    del form["csrf_token"]
    if token:
        form["csrf_token"] = token
    assert client.post("/quarantine/decide", data=form).status_code == 403
    assert reviews(lake) == []


# -- decisions ---------------------------------------------------------------------------------


def test_release_inserts_one_review_shown_at_once_as_pending(lake, caplog):
    client = app_client(lake)
    login(client, "planner")
    form = decide_form(client, 1)
    caplog.set_level(logging.INFO, logger="plantlake.audit")
    answer = client.post("/quarantine/decide", data={**form, "decision": "release"})
    assert answer.status_code == 303
    (row,) = reviews(lake)
    assert (row["decision_id"], row["decision"], row["reviewer"], row["kafka_offset"]) == (
        form["decision_id"], "release", "planner", 1
    )  # fmt: skip
    assert row["supersedes"] is None and row["decided_at"] is not None
    assert (
        f"decision {form['decision_id']} by planner: release on reading {TOPIC}/0/1" in caplog.text
    )
    assert "Released 1 reading" in client.get(answer.headers["location"]).text
    # Silver has not applied it yet: the queue says so, and the open queue no longer lists it.
    listed = client.get("/quarantine?status=all").text
    assert "released · pending in silver" in listed
    assert "plantlake.telemetry/0/1" not in client.get("/quarantine").text


def test_a_double_submit_inserts_once_and_says_already_recorded(lake):
    client = app_client(lake)
    login(client, "planner")
    form = {**decide_form(client, 1), "decision": "confirm_fault"}
    first = client.post("/quarantine/decide", data=form)
    client.get(first.headers["location"])  # shows (and clears) the first message
    second = client.post("/quarantine/decide", data=form)
    assert second.status_code == 303
    assert "Already recorded" in client.get(second.headers["location"]).text
    assert len(reviews(lake)) == 1


def test_a_decision_on_a_reading_decided_meanwhile_is_409(lake):
    client = app_client(lake)
    login(client, "planner")
    form = decide_form(client, 1)  # rendered while the reading was undecided
    ReviewStore(lake).decide([Decision(
        "other0000000000000000000000000000", ReadingKey(TOPIC, 0, 1), "site1/line1/pump-1",
        "bearing_temperature", T0_MS, "note", "checked the wiring", "viewer-turned-planner", None,
    )])  # fmt: skip
    answer = client.post("/quarantine/decide", data={**form, "decision": "release"})
    assert answer.status_code == 409
    assert "changed since you opened it" in answer.text
    assert [r["decision_id"] for r in reviews(lake)] == ["other0000000000000000000000000000"]
    # Reloaded, the form supersedes the note and the release goes through.
    fresh = decide_form(client, 1)
    assert fresh["supersedes"] == "other0000000000000000000000000000"
    assert (
        client.post("/quarantine/decide", data={**fresh, "decision": "release"}).status_code == 303
    )
    assert len(reviews(lake)) == 2


def test_a_reading_silver_could_not_convert_cannot_be_released(lake):
    client = app_client(lake)
    login(client, "planner")
    form = decide_form(client, 2)
    answer = client.post("/quarantine/decide", data={**form, "decision": "release"})
    assert answer.status_code == 400
    assert "could not convert its unit &#39;furlong&#39;" in answer.text
    assert reviews(lake) == []
    confirmed = client.post("/quarantine/decide", data={**form, "decision": "confirm_fault"})
    assert confirmed.status_code == 303 and len(reviews(lake)) == 1


def test_a_note_needs_text(lake):
    client = app_client(lake)
    login(client, "planner")
    form = decide_form(client, 1)
    assert client.post("/quarantine/decide", data={**form, "decision": "note"}).status_code == 400
    noted = client.post("/quarantine/decide", data={**form, "decision": "note", "note": "hot day"})
    assert noted.status_code == 303
    assert reviews(lake)[0]["note"] == "hot day"


# -- bulk --------------------------------------------------------------------------------------


def bulk_form(client, query: str) -> dict[str, str]:
    (form,) = form_fields(client.get(f"/quarantine?{query}").text, "/quarantine/bulk")
    return form


def test_bulk_decides_the_filtered_set_once(lake):
    client = app_client(lake)
    login(client, "planner")
    form = {**bulk_form(client, "sensor=bearing_temperature"), "decision": "confirm_fault"}
    assert client.post("/quarantine/bulk", data=form).status_code == 303
    decided = reviews(lake)
    assert sorted(r["kafka_offset"] for r in decided) == [1, 2]  # not the flow reading
    assert {r["decision"] for r in decided} == {"confirm_fault"}
    again = client.post("/quarantine/bulk", data=form)
    assert again.status_code == 303
    assert "Already recorded" in client.get(again.headers["location"]).text
    assert len(reviews(lake)) == 2


def test_bulk_on_a_set_that_changed_since_render_is_409_and_writes_nothing(lake):
    client = app_client(lake)
    login(client, "planner")
    form = {**bulk_form(client, "sensor=bearing_temperature"), "decision": "confirm_fault"}
    seed(lake, "silver.quarantine", [quarantine_row(offset=4, event_time_ms=T0_MS + 1000)])
    answer = client.post("/quarantine/bulk", data=form)
    assert answer.status_code == 409 and "changed since you opened" in answer.text
    assert reviews(lake) == []


def test_bulk_release_refuses_a_set_with_unit_failed_readings(lake):
    client = app_client(lake)
    login(client, "planner")
    form = {**bulk_form(client, "sensor=bearing_temperature"), "decision": "release"}
    answer = client.post("/quarantine/bulk", data=form)
    assert answer.status_code == 400 and "1 of these readings refuse it" in answer.text
    assert reviews(lake) == []


# -- pages -------------------------------------------------------------------------------------


def test_every_page_renders_on_an_empty_lake(settings):
    client = app_client(settings)
    login(client, "planner")
    for path in (
        "/quarantine",
        "/quarantine?status=all&rule=unit",
        "/twin",
        "/work-orders",
        "/live",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[-500:])
    queue = client.get("/quarantine").text
    assert "No quarantined reading matches" in queue and "No lake table read" in queue
    assert client.get("/quarantine/reading/plantlake.telemetry/0/1").status_code == 404
    assert client.get("/quarantine/reading/bad%27topic/0/1").status_code == 404


def test_the_queue_filters_and_htmx_gets_only_the_rows(lake):
    client = app_client(lake)
    login(client, "planner")
    page = client.get("/quarantine?rule=flow_plausible").text
    assert "plantlake.telemetry/0/3" in page and "plantlake.telemetry/0/1" not in page
    assert "<code>silver.quarantine</code> v0" in page  # the footer names the version read
    by_line = client.get("/quarantine?line=site1/line2").text
    assert "No quarantined reading matches" in by_line
    rows = client.get("/quarantine?rule=unit", headers={"HX-Request": "true", "HX-Target": "queue"})
    assert "<html" not in rows.text and "plantlake.telemetry/0/2" in rows.text
    assert client.get("/quarantine?since=soon").status_code == 400


def test_the_reading_page_plots_the_sensor_with_the_rules_limits(lake):
    client = app_client(lake)
    login(client, "planner")
    page = client.get("/quarantine/reading/plantlake.telemetry/0/1").text
    assert 'src="data:image/svg+xml;base64,' in page
    assert "bearing_temperature_rotating max 150 degC" in page
    assert "edge-a-1" in page and "opcua" in page  # lineage
    assert "1 other quarantined reading(s) could not be converted" in page  # the furlong one
    unit_failed = client.get("/quarantine/reading/plantlake.telemetry/0/2").text
    assert "This reading is not plotted" in unit_failed
