"""The twin, work-order and live pages and /metrics through FastAPI's TestClient, over a
file:// lake seeded with delta-rs: they render with data and on an empty lake, only planners
give feedback, with a CSRF token, and a double submit records once."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from plantlake.core.clock import now_ms
from plantlake.core.errors import SourceError
from plantlake.lake import read_table
from plantlake.models.logic.work_orders import Alert, evidence
from plantlake.workbench.order_views import new_feedback_id
from tests.unit.workbench_lake import app_client, csrf_of, login, seed, workbench_settings

PUMP, MOTOR, PRESS = "site1/line1/pump-1", "site1/line1/motor-1", "site1/line2/press-1"
MIN = 60_000
WO = "wo-0123456789abcdef01234567"


def _time(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


@pytest.fixture
def settings(tmp_path):
    return workbench_settings(tmp_path)


@pytest.fixture
def planner(settings):
    client = app_client(settings)
    login(client, "planner")
    return client


@pytest.fixture
def viewer(settings):
    client = app_client(settings)
    login(client, "viewer")
    return client


PAGES = ("/twin", "/twin/rows", "/work-orders", "/live", "/live/rows")


# -- an empty lake -------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_pages_of_an_empty_lake_say_no_data(viewer, page):
    response = viewer.get(page)
    assert response.status_code == 200, response.text
    assert "No data" in response.text or "not running" in response.text.lower()
    assert 'style="' not in response.text  # the CSP allows no inline style


def test_pages_need_a_login(settings):
    client = app_client(settings)
    assert client.get("/twin").status_code == 303
    assert client.get("/twin").headers["location"].startswith("/login?next=/twin")
    polled = client.get("/twin/rows", headers={"HX-Request": "true"})
    assert polled.status_code == 401 and "HX-Redirect" in polled.headers


# -- twin ---------------------------------------------------------------------------------------


def twin_row(asset: str, sensor: str, status: str, now: int, *, age_ms: int = 5_000) -> dict:
    event = now - age_ms
    return {
        "asset": asset, "sensor": sensor, "asset_class": "pump", "quantity": "temperature",
        "value": 61.5, "unit": "degC", "quality": "Good", "event_time": _time(event),
        "event_time_ms": event, "receive_time": _time(event), "source_protocol": "opcua",
        "source_node": "edge-a", "kafka_topic": "t", "kafka_partition": 0, "kafka_offset": 1,
        "status": status, "status_reason": f"{status} for a test", "status_since": _time(event),
        "status_as_of": _time(now), "freshness_slo_ms": 180_000,
    }  # fmt: skip


def test_twin_shows_dead_first_with_counts_and_trends(settings, viewer):
    now = now_ms()
    seed(settings, "gold.twin_state", [
        twin_row(PUMP, "bearing_temperature", "alive", now),
        twin_row(MOTOR, "winding_temperature", "dead", now, age_ms=20 * MIN),
        twin_row(MOTOR, "current", "alive", now),
    ])  # fmt: skip
    seed(settings, "reference.asset_registry", [
        {"asset": PRESS, "sensor": "hydraulic_pressure", "asset_class": "press",
         "quantity": "pressure", "valid_from": _time(now - 86_400_000)},
    ])  # fmt: skip
    seed(settings, "gold.telemetry_1m", [
        {"asset": PUMP, "sensor": "bearing_temperature", "window_start_ms": now - m * MIN,
         "window_start": _time(now - m * MIN), "mean": 60.0 + m}
        for m in range(1, 30)
    ])  # fmt: skip
    page = viewer.get("/twin").text
    order = [m.group(1) for m in re.finditer(r'data-asset="([^"]+)"', page)]
    assert order == [MOTOR, PRESS, PUMP]  # dead, no data, alive
    assert re.search(r'data-status="dead"[^>]*>\s*<strong>1</strong>DEAD sensors', page)
    assert re.search(r'data-status="no_data"[^>]*>\s*<strong>1</strong>NO DATA', page)
    assert '<span class="pl-badge pl-dead">DEAD</span>' in page
    assert "dead for a test" in page
    assert page.count("<polyline") == 1  # the one sensor with a trend
    assert 'hx-get="/twin/rows"' in page and 'hx-trigger="every 10s"' in page
    # The footer names the versions read.
    assert "gold.twin_state</code> v0" in page
    rows = viewer.get("/twin/rows").text
    assert "<html" not in rows and 'id="twin-rows"' in rows and MOTOR in rows


# -- work orders --------------------------------------------------------------------------------


def seed_orders(settings) -> None:
    opened = now_ms() - 6 * 3600_000
    proof = evidence(Alert(
        asset=PUMP, asset_class="pump", model_name="failure-predictor", model_version="3",
        model_kind="failure", feature_time_ms=opened, score=0.91, threshold=0.5,
        horizon_hours=24.0, features={"temperature_mean_1h": 88.5},
    ))  # fmt: skip
    base = {
        "asset_class": "pump", "failure_mode": "failure", "model_name": "failure-predictor",
        "model_version": "3", "model_kind": "failure", "threshold": 0.5, "horizon_hours": 24.0,
        "alert_count": 3, "latest_score": 0.93,
    }  # fmt: skip
    seed(settings, "gold.work_orders", [
        {**base, "work_order_id": WO, "asset": PUMP, "status": "open",
         "opened_at": _time(opened), "opened_feature_time_ms": opened, "evidence": proof},
        {**base, "work_order_id": "wo-closed", "asset": MOTOR, "status": "closed",
         "opened_at": _time(opened - 86_400_000), "closed_at": _time(opened),
         "closed_reason": "repair of motor", "evidence": proof},
    ])  # fmt: skip
    seed(settings, "gold.predictions", [
        {"model_name": "failure-predictor", "model_version": "3", "asset": PUMP,
         "feature_time": _time(opened + i * 5 * MIN), "feature_time_ms": opened + i * 5 * MIN,
         "score": 0.3 + 0.05 * i, "threshold": 0.5, "scored_at": _time(opened)}
        for i in range(-6, 12)
    ])  # fmt: skip


def test_work_order_list_filters(settings, viewer):
    seed_orders(settings)
    open_page = viewer.get("/work-orders").text
    assert f'data-order="{WO}"' in open_page and "wo-closed" not in open_page
    closed = viewer.get("/work-orders", params={"status": "closed"}).text
    assert "wo-closed" in closed and WO not in closed
    both = viewer.get("/work-orders", params={"status": "all", "asset": MOTOR}).text
    assert "wo-closed" in both and f'data-order="{WO}"' not in both


def test_work_order_detail_shows_evidence_and_the_risk_trend(settings, viewer):
    seed_orders(settings)
    page = viewer.get(f"/work-orders/{WO}").text
    assert "failure-predictor v3 (failure)" in page
    assert "bearing_wear" in page and "88.5" in page  # a signature feature with its value
    assert 'class="threshold"' in page and "alert threshold 0.5" in page
    assert page.count('class="alert"') == 8  # scores 0.5 .. 0.85 are at or above 0.5
    assert "Only planners give feedback" in page
    assert 'action="/work-orders/' not in page  # no feedback form for a viewer
    assert viewer.get("/work-orders/wo-nope").status_code == 404


def _feedback_form(client, order: str = WO) -> dict[str, str]:
    page = client.get(f"/work-orders/{order}").text
    feedback_id = re.search(r'name="feedback_id" value="([^"]+)"', page)
    assert feedback_id, "no feedback form on the page"
    return {"csrf_token": csrf_of(page), "feedback_id": feedback_id.group(1)}


def _stored(settings) -> pd.DataFrame:
    return read_table("gold.work_order_feedback", settings=settings)


def test_a_double_submit_records_one_verdict(settings, planner):
    seed_orders(settings)
    form = {**_feedback_form(planner), "verdict": "acknowledged", "note": "crew on it"}
    first = planner.post(f"/work-orders/{WO}/feedback", data=form)
    second = planner.post(f"/work-orders/{WO}/feedback", data=form)
    assert (first.status_code, second.status_code) == (303, 303)
    assert first.headers["location"].endswith("feedback=recorded")
    assert second.headers["location"].endswith("feedback=duplicate")
    stored = _stored(settings)
    assert len(stored) == 1
    row = stored.iloc[0]
    assert (row.work_order_id, row.asset, row.verdict, row.note, row.planner) == (
        WO, PUMP, "acknowledged", "crew on it", "planner",
    )  # fmt: skip
    page = planner.get(first.headers["location"]).text
    assert "Your feedback is recorded." in page
    assert f'data-feedback="{form["feedback_id"]}"' in page and "crew on it" in page
    assert "Acknowledged" in planner.get("/work-orders").text


def test_a_viewer_cannot_give_feedback(settings, planner, viewer):
    seed_orders(settings)
    form = {**_feedback_form(planner), "verdict": "false_alarm"}
    form["csrf_token"] = csrf_of(viewer.get("/twin").text)  # the viewer's own valid token
    assert viewer.post(f"/work-orders/{WO}/feedback", data=form).status_code == 403
    assert _stored(settings).empty


def test_feedback_needs_the_csrf_token(settings, planner):
    seed_orders(settings)
    form = {**_feedback_form(planner), "verdict": "false_alarm"}
    form.pop("csrf_token")
    assert planner.post(f"/work-orders/{WO}/feedback", data=form).status_code == 403
    form["csrf_token"] = "forged"
    assert planner.post(f"/work-orders/{WO}/feedback", data=form).status_code == 403
    assert _stored(settings).empty


def test_invalid_feedback_is_refused_with_the_reason(settings, planner):
    seed_orders(settings)
    form = {**_feedback_form(planner), "verdict": "done", "note": ""}
    response = planner.post(f"/work-orders/{WO}/feedback", data=form)
    assert response.status_code == 400
    assert "Say in the note what was done." in response.text
    unknown = {**form, "note": "x", "feedback_id": new_feedback_id()}
    assert planner.post("/work-orders/wo-nope/feedback", data=unknown).status_code == 404
    assert _stored(settings).empty


# -- live and metrics ---------------------------------------------------------------------------


def write_status_files(settings) -> None:
    from plantlake.ingest.buffer import Outbox

    now = now_ms()
    run = settings.home / "run"
    run.mkdir(parents=True)
    (run / "forwarder-opcua-edge.json").write_text(json.dumps(
        {"sent": 420, "dead_letters": 1, "resent": 0, "producers": 1, "failed_batches": 0,
         "last_error": None, "errors": []}))  # fmt: skip
    (run / "job-silver.json").write_text(json.dumps(
        {"job": "silver", "query_id": "q", "batch_id": 9, "batches": 3, "rows": 300,
         "num_input_rows": 100, "rows_per_second": 250.0, "batch_duration_ms": 1500,
         "backlog": 4, "updated_at_ms": now - 2000, "running": True}))  # fmt: skip
    (run / f"hot-path-{settings.hot_path.group_id}.json").write_text(json.dumps(
        {"pid": 1, "at_ms": now - 600_000, "readings": 10, "lag": 99, "commits": 2}))  # fmt: skip
    outbox = Outbox(settings.edge_buffer / "opcua-edge.sqlite")
    outbox.append([("plantlake.telemetry", b"k", b"v")] * 25)
    outbox.close()


def test_live_shows_edges_jobs_and_quarantine_rates(settings, viewer):
    write_status_files(settings)
    seed(settings, "silver.dq_metrics", [
        {"batch_id": b, "rule": "range", "action": "quarantine", "checked": 100, "passed": 90,
         "failed": 10, "batch_time": _time(now_ms() - (5 - b) * 10_000)}
        for b in range(5)
    ])  # fmt: skip
    page = viewer.get("/live").text
    edge = re.search(r'data-edge="opcua-edge">(.*?)</tr>', page, re.S)
    assert edge and "<td>running</td>" in edge.group(1) and ">25<" in edge.group(1)
    silver = re.search(r'data-job="silver">(.*?)</tr>', page, re.S)
    assert silver and "<td>running</td>" in silver.group(1) and "1.5 s" in silver.group(1)
    hot = re.search(r'data-job="hot-path">(.*?)</tr>', page, re.S)
    assert hot and "not reporting" in hot.group(1) and "CHECK" in hot.group(1)
    rule = re.search(r'data-rule="range">(.*?)</tr>', page, re.S)
    assert rule and "10.00%" in rule.group(1) and ">500<" in rule.group(1)
    assert 'hx-get="/live/rows"' in page


def test_live_survives_an_unreachable_lake(settings, viewer, monkeypatch):
    def down(name, **_):
        raise SourceError(f"Cannot reach the store for {name}.")

    monkeypatch.setattr("plantlake.lake.read_table", down)
    monkeypatch.setattr("plantlake.lake.table_info", down)  # the footer's versions too
    page = viewer.get("/live")
    assert page.status_code == 200
    assert "Could not read silver.dq_metrics: Cannot reach the store" in page.text


def test_metrics_need_no_login_and_parse(settings):
    write_status_files(settings)
    now = now_ms()
    seed(settings, "gold.twin_state", [twin_row(MOTOR, "winding_temperature", "dead", now)])
    response = app_client(settings).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("plantlake_edge_buffer_records", (("edge", "opcua-edge"),))] == 25
    assert samples[("plantlake_job_backlog", (("job", "silver"),))] == 4
    assert samples[("plantlake_job_backlog", (("job", "hot-path"),))] == 99
    assert samples[("plantlake_job_running", (("job", "hot-path"),))] == 0
    assert samples[("plantlake_twin_sensors", (("status", "dead"),))] == 1
    dead = (("asset", MOTOR), ("sensor", "winding_temperature"))
    assert samples[("plantlake_twin_dead_sensor", dead)] == 1
    assert samples[("plantlake_quarantine_open", ())] == 0
