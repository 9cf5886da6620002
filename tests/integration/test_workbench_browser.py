"""The workbench in a real browser: Debian's chromium, driven by Playwright, against the app served
on loopback over a lake that the real silver job filled and then applies the planner's decisions to.

A planner logs in, releases one quarantined reading and confirms another as a sensor fault; the
silver job then puts the released reading into silver.telemetry once (also when run again) and
sets the review columns of both. A viewer sees every page but cannot decide. Each page is
screenshotted into the test's folder (and into $PLANTLAKE_SCREENSHOTS when set: that is how the
PNGs under docs/screenshots/ are made), and no page may request anything outside 127.0.0.1.

The lake is on file:// under the test's temp dir (the app reads and writes it through delta-rs as
it does MinIO; tests/integration/test_review_store.py covers concurrent writers on MinIO).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from plantlake.core.clock import now_ms
from plantlake.core.contracts import BRONZE_TELEMETRY, SILVER_QUARANTINE, SILVER_TELEMETRY
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs import silver
from plantlake.pipelines.jobs.reference import load_reference
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import plant_registry_entries
from tests.integration.browser_app import CHROMIUM, CHROMIUM_ARGS, OffHostRequests, served
from tests.spark.test_silver import BRONZE_SCHEMA, _ts, bronze_row
from tests.unit.test_workbench_pages import seed_orders, twin_row, write_status_files
from tests.unit.workbench_lake import PASSWORDS, seed, workbench_settings

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow, pytest.mark.browser]

PUMP = "plant1/line1/pump-02"
MOTOR = "plant1/line1/motor-03"
MIN = 60_000
# A plausible twin value per quantity, in its canonical unit (window features have none).
TYPICAL = {"temperature": (61.5, "degC"), "pressure": (6.2, "bar"), "flow": (42.0, "m3/h"),
           "current": (18.3, "A"), "speed": (1480.0, "rpm"), "vibration": (2.1, "mm/s"),
           "state": (1.0, None)}  # fmt: skip
# The two impossible bearing temperatures the planner decides on (their Kafka offsets).
RELEASED, CONFIRMED = 1_000, 1_001


def _bronze(now: int) -> list[dict]:
    """Two hours of plausible pump readings, a minute apart, and two of 900 degC among them."""
    rows = []
    for i in range(120):
        t = now - (120 - i) * MIN
        rows.append(bronze_row(PUMP, "bearing_temperature", 55.0 + (i % 7) / 10, "degC",
                               t_ms=t, offset=i, sequence=i))  # fmt: skip
        rows.append(bronze_row(PUMP, "discharge_pressure", 6.0 + (i % 5) / 10, "bar",
                               t_ms=t, offset=500 + i, sequence=500 + i))  # fmt: skip
    for offset, minutes_ago in ((RELEASED, 61.5), (CONFIRMED, 30.5)):
        t = now - int(minutes_ago * MIN)
        rows.append(bronze_row(PUMP, "bearing_temperature", 900.0, "degC",
                               t_ms=t, offset=offset, sequence=offset))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """Workbench settings over a lake whose quarantine the silver job filled, with twin, work
    orders and pipeline status to show."""
    settings = workbench_settings(tmp_path_factory.mktemp("workbench-browser"))
    entries = plant_registry_entries(build_plant(7), default_window_features())
    load_reference(spark, settings, entries)
    now = now_ms()
    spark.createDataFrame(_bronze(now), BRONZE_SCHEMA).write.format("delta").save(
        BRONZE_TELEMETRY.path(settings.lake)
    )
    silver.run(spark, settings, once=True).awaitTermination()
    held = {r.kafka_offset for r in _table(spark, settings, SILVER_QUARANTINE).collect()}
    assert {RELEASED, CONFIRMED} <= held, f"silver did not quarantine both readings: {held}"
    # Every registered sensor alive but one stale and one dead, as a running plant's twin.
    odd = {(PUMP, "discharge_pressure"): ("stale", 6 * MIN), (MOTOR, "bearing_temperature"):
           ("dead", 25 * MIN)}  # fmt: skip
    twin = []
    for e in entries:
        status, age_ms = odd.get((e.asset, e.sensor), ("alive", 5_000))
        value, unit = TYPICAL.get(e.quantity, (0.4, None))
        twin.append({**twin_row(e.asset, e.sensor, status, now, age_ms=age_ms), "value": value,
                     "unit": unit, "asset_class": e.asset_class, "quantity": e.quantity})  # fmt: skip
    seed(settings, "gold.twin_state", twin)
    seed(settings, "gold.telemetry_1m", [
        {"asset": PUMP, "sensor": "bearing_temperature", "window_start_ms": now - m * MIN,
         "window_start": _ts(now - m * MIN), "mean": 55.0 + (m % 9) / 5}
        for m in range(1, 110)
    ])  # fmt: skip
    seed_orders(settings)
    write_status_files(settings)
    return settings


def _table(spark, settings, ref):
    return spark.read.format("delta").load(ref.path(settings.lake))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path):
    """Saves a page's screenshot into the test's folder, and into $PLANTLAKE_SCREENSHOTS."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    extra = os.environ.get("PLANTLAKE_SCREENSHOTS")

    def take(page, name: str) -> Path:
        path = folder / f"{name}.png"
        # The whole page, up to a screen's height and a half (the twin lists 112 sensors).
        height = min(page.evaluate("document.documentElement.scrollHeight"), 1400)
        page.screenshot(path=str(path), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1360, "height": height})  # fmt: skip
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    return take


def _session(browser, base: str, user: str, shots=None):
    """A fresh browser context logged in as `user`; the page and its off-host request log."""
    context = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900})
    off_host = OffHostRequests()
    context.on("request", off_host)
    page = context.new_page()
    page.goto("/quarantine")
    assert "/login" in page.url  # not logged in: sent to the login page
    if shots:
        shots(page, "login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/quarantine**")
    return context, page, off_host


def _reading(offset: int) -> str:
    return f"/quarantine/reading/plantlake.telemetry/0/{offset}"


def test_a_planner_releases_one_reading_and_confirms_another(spark, lake, browser, shots):
    with served(lake) as base:
        context, page, off_host = _session(browser, base, "planner", shots)
        assert page.locator("text=900").count() >= 2  # both readings wait in the queue
        shots(page, "quarantine")

        page.goto(_reading(RELEASED))
        assert page.locator("img[src^='data:image/svg+xml']").count() == 1  # the ±2 h plot
        shots(page, "reading")
        page.click("form.decide button[value=release]")
        page.wait_for_load_state()
        page.goto(_reading(CONFIRMED))
        page.click("form.decide button[value=confirm_fault]")
        page.wait_for_load_state()

        for path, name in (("/twin", "twin"), ("/work-orders", "work-orders"), ("/live", "live")):
            page.goto(path)
            assert page.locator("main").count() == 1
            shots(page, name)
        page.goto("/work-orders")
        page.locator("a[href^='/work-orders/']").first.click()
        page.wait_for_load_state()
        shots(page, "work-order")
        context.close()
        assert off_host.urls == []

    stored = _decisions(lake)
    assert sorted(stored) == [(RELEASED, "release"), (CONFIRMED, "confirm_fault")]

    # The silver job applies them (no new bronze: it applies them when it starts), twice.
    for _ in range(2):
        silver.run(spark, lake, once=True).awaitTermination()
        released = _table(spark, lake, SILVER_TELEMETRY).where(
            F.col("kafka_offset").isin(RELEASED, CONFIRMED)
        )
        [row] = released.collect()  # in silver.telemetry once; the confirmed fault stays out
        assert row.kafka_offset == RELEASED and row.value == 900.0
        assert row.released_by == stored[(RELEASED, "release")]
    reviews = {
        r.kafka_offset: r
        for r in _table(spark, lake, SILVER_QUARANTINE)
        .where(F.col("kafka_offset").isin(RELEASED, CONFIRMED))
        .collect()
    }
    assert reviews[RELEASED].review_status == "released"
    assert reviews[CONFIRMED].review_status == "confirmed_fault"
    assert {r.reviewer for r in reviews.values()} == {"planner"}
    assert all(r.decided_at is not None and r.review_decision_id for r in reviews.values())


def _decisions(settings) -> dict[tuple[int, str], str]:
    from plantlake.lake import read_table

    rows = read_table("silver.quarantine_reviews", settings=settings)
    return {(int(r.kafka_offset), r.decision): r.decision_id for r in rows.itertuples(index=False)}


def test_a_viewer_sees_the_queue_but_cannot_decide(lake, browser, shots):
    with served(lake) as base:
        context, page, off_host = _session(browser, base, "viewer")
        page.goto("/quarantine?status=all")
        assert page.locator("text=900").count() >= 2
        assert page.locator("form.decide").count() == 0  # no decide buttons
        token = page.locator("input[name=csrf_token]").first.input_value()
        refused = context.request.post(
            "/quarantine/decide",
            form={
                "csrf_token": token,
                "kafka_topic": "plantlake.telemetry",
                "kafka_partition": "0",
                "kafka_offset": str(CONFIRMED),
                "decision_id": "viewer-try",
                "supersedes": "",
                "decision": "note",
                "note": "a viewer trying",
            },  # fmt: skip
        )
        assert refused.status == 403
        page.goto(_reading(CONFIRMED))
        assert page.locator("form.decide").count() == 0
        context.close()
        assert off_host.urls == []
    assert "viewer-try" not in _decisions(lake).values()
