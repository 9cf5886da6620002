"""Pipeline health: edge rows from status files and buffers, job progress, the hot path,
quarantine rates from silver.dq_metrics, and the Prometheus metrics built from them."""

from __future__ import annotations

import json
from dataclasses import asdict

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from plantlake.core.config import PipelineSettings
from plantlake.core.contracts import GOLD_TWIN_STATE, REFERENCE_ASSET_REGISTRY, SILVER_DQ_METRICS
from plantlake.ingest.buffer import Outbox
from plantlake.ingest.forwarder import ForwarderStats
from plantlake.workbench.live_views import (
    HOT_PATH_JOB,
    NOT_RUNNING,
    RUNNING,
    SILENT,
    STOPPED,
    PipelineHealth,
    edge_rows,
    hot_path_row,
    job_row,
    job_rows,
    job_silent_after_s,
    quarantine_rates,
    trigger_seconds,
)
from plantlake.workbench.metrics import CachedHealth, PipelineCollector
from plantlake.workbench.routes_live import buffer_pending
from plantlake.workbench.twin_views import twin_overview

NOW = 1_767_268_800_000
S = 1000


def forwarder(sent=10, dead_letters=0, last_error=None) -> dict:
    """What forwarder_process writes: ForwarderStats as JSON."""
    return {"sent": sent, "dead_letters": dead_letters, "resent": 0, "producers": 1,
            "failed_batches": 0, "last_error": last_error, "errors": []}  # fmt: skip


# -- edges --------------------------------------------------------------------------------------


def test_edge_rows_flag_backlogs_and_silent_forwarders():
    rows = edge_rows(
        {
            "opcua-edge": (forwarder(sent=500), NOW - 1 * S),
            "modbus-edge": (forwarder(), NOW - 60 * S),  # stopped writing its status
            "sparkplug-edge": (forwarder(last_error="broker down"), NOW - 2 * S),
            "broken-edge": (None, NOW - 1 * S),  # a half-written status file
        },
        {
            "opcua-edge": (0, None),
            "modbus-edge": (1200, NOW - 300 * S),
            "sparkplug-edge": (40, NOW - 90 * S),
            "thread-edge": (3, NOW - 5 * S),  # edge.forwarder = "thread": no status file
            "broken-edge": None,  # unreadable buffer
        },
        now_ms=NOW,
    )
    by_node = {r.node: r for r in rows}
    assert [r.node for r in rows] == ["modbus-edge", "sparkplug-edge",
                                      "broken-edge", "opcua-edge", "thread-edge"]  # fmt: skip
    ok = by_node["opcua-edge"]
    assert (ok.state, ok.buffered, ok.oldest_age_s, ok.sent, ok.problem) == (
        RUNNING, 0, None, 500, None,
    )  # fmt: skip
    stopped = by_node["modbus-edge"]
    assert stopped.state == NOT_RUNNING
    assert stopped.oldest_age_s == 300.0 and stopped.oldest_text == "5 min"
    assert "1200 records wait and no forwarder" in stopped.problem
    assert "5 min old" in stopped.problem
    failing = by_node["sparkplug-edge"]
    assert failing.state == RUNNING and "Kafka: broker down" in failing.problem
    assert by_node["thread-edge"].state == "no forwarder status"
    assert by_node["thread-edge"].problem is None
    assert by_node["broken-edge"].buffered is None and by_node["broken-edge"].sent is None


def test_buffer_pending_reads_an_open_buffer_without_writing(tmp_path):
    path = tmp_path / "edge-a.sqlite"
    outbox = Outbox(path)
    outbox.append([("t", b"k", b"v")] * 3)
    outbox.append([("t", b"k", b"w")] * 4)
    outbox.ack(2)  # Kafka has the first two
    assert buffer_pending(path) == outbox.pending()
    assert buffer_pending(path)[0] == 5
    outbox.ack(7)
    assert buffer_pending(path) == (0, None)
    outbox.close()
    assert buffer_pending(tmp_path / "missing.sqlite") is None
    assert not (tmp_path / "missing.sqlite").exists()  # read-only: nothing created
    (tmp_path / "junk.sqlite").write_text("not a database")
    assert buffer_pending(tmp_path / "junk.sqlite") is None


# -- jobs ---------------------------------------------------------------------------------------


def progress(job="silver", *, age_s=5.0, running=True, backlog=12) -> dict:
    """A `job-<job>.json` as the jobs write it (format in the workbench design)."""
    return {"job": job, "query_id": "q-1", "batch_id": 41, "batches": 7, "rows": 7000,
            "num_input_rows": 1000, "rows_per_second": 2500.5, "batch_duration_ms": 400,
            "backlog": backlog, "updated_at_ms": NOW - int(age_s * S), "running": running}  # fmt: skip


def test_job_row_from_a_progress_file():
    row = job_row(progress(), now_ms=NOW, silent_after_s=120)
    assert (row.job, row.state, row.problem) == ("silver", RUNNING, None)
    assert (row.batch_id, row.batches, row.rows, row.backlog) == (41, 7, 7000, 12)
    assert row.rows_per_second == 2500.5 and row.batch_duration_s == 0.4
    assert row.age_text == "5 s"


def test_a_running_job_that_stopped_reporting_is_flagged():
    row = job_row(progress(age_s=600), now_ms=NOW, silent_after_s=120)
    assert row.state == SILENT
    assert "no progress for 10 min" in row.problem


def test_a_finished_job_is_stopped_not_a_problem():
    row = job_row(progress(age_s=3600, running=False, backlog=None), now_ms=NOW,
                  silent_after_s=120)  # fmt: skip
    assert (row.state, row.problem, row.backlog) == (STOPPED, None, None)


def test_silence_allowed_follows_the_job_trigger():
    pipeline = PipelineSettings(cold_trigger="2 minutes")
    assert trigger_seconds("10 seconds") == 10.0
    assert trigger_seconds("1 minute") == 60.0
    assert trigger_seconds("once") is None
    assert job_silent_after_s("cold", pipeline) == 480.0
    assert job_silent_after_s("silver", pipeline) == 120.0  # 4 x 10 s is below the floor
    assert job_silent_after_s("unknown", pipeline) == 120.0


def test_hot_path_row():
    missing = hot_path_row(None, now_ms=NOW)
    assert (missing.job, missing.state) == (HOT_PATH_JOB, NOT_RUNNING)
    assert missing.problem
    status = {"pid": 1, "at_ms": NOW - 2 * S, "readings": 900, "lag": 17, "commits": 30}
    fresh = hot_path_row(status, now_ms=NOW)
    assert (fresh.state, fresh.backlog, fresh.rows, fresh.problem) == (RUNNING, 17, 900, None)
    old = hot_path_row({**status, "at_ms": NOW - 300 * S}, now_ms=NOW)
    assert old.state == SILENT and "twin is not being updated" in old.problem


def test_job_rows_put_the_hot_path_first():
    rows = job_rows([progress("silver"), progress("bronze")], None, now_ms=NOW,
                    pipeline=PipelineSettings())  # fmt: skip
    assert [r.job for r in rows] == [HOT_PATH_JOB, "bronze", "silver"]


# -- quarantine rates ---------------------------------------------------------------------------


def dq(batch: int, rule: str, checked: int, failed: int, action: str = "quarantine") -> dict:
    return {"batch_id": batch, "rule": rule, "action": action, "checked": checked,
            "passed": checked - failed, "failed": failed,
            "batch_time": pd.Timestamp(NOW + batch * 10 * S, unit="ms", tz="UTC")}  # fmt: skip


def dq_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(SILVER_DQ_METRICS.column_names))


def test_quarantine_rates_over_the_recent_batches():
    rows = [dq(b, "range", 100, 50) for b in range(0, 5)]  # old batches, a bad spell
    rows += [dq(b, "range", 100, 2) for b in range(5, 25)]
    rows += [dq(b, "stuck", 100, 5, action="warn") for b in range(5, 25)]
    rates = quarantine_rates(dq_frame(rows), batches=20)
    assert rates.batches == 20
    assert [(r.rule, r.action, r.checked, r.failed) for r in rates.rules] == [
        ("stuck", "warn", 2000, 100), ("range", "quarantine", 2000, 40),
    ]  # fmt: skip
    assert rates.rules[0].ratio == pytest.approx(0.05)
    assert rates.first_ms == NOW + 5 * 10 * S and rates.last_ms == NOW + 24 * 10 * S
    empty = quarantine_rates(dq_frame([]))
    assert (empty.rules, empty.batches) == ((), 0)


def test_a_rule_that_checked_nothing_has_rate_zero():
    assert quarantine_rates(dq_frame([dq(1, "range", 0, 0)])).rules[0].ratio == 0.0


# -- metrics ------------------------------------------------------------------------------------


def _twin():
    rows = []
    for sensor, status in (("a", "alive"), ("b", "dead"), ("c", "stale")):
        rows.append({"asset": "s1/l1/pump-1", "sensor": sensor, "status": status,
                     "status_reason": "", "event_time_ms": NOW - S, "freshness_slo_ms": 180_000,
                     "value": 1.0})  # fmt: skip
    registry = [{"asset": "s1/l1/pump-2", "sensor": "flow"}]
    return twin_overview(
        pd.DataFrame(rows, columns=list(GOLD_TWIN_STATE.column_names)),
        pd.DataFrame(registry, columns=list(REFERENCE_ASSET_REGISTRY.column_names)),
        now_ms=NOW,
    )


def _samples(health: PipelineHealth) -> dict[str, dict[tuple, float]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(lambda: health))
    text = generate_latest(registry).decode()
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[key] = sample.value
    return found


def test_metrics_carry_every_figure_with_its_labels():
    health = PipelineHealth(
        now_ms=NOW,
        edges=tuple(
            edge_rows(
                {"opcua-edge": (forwarder(), NOW - S)},
                {"opcua-edge": (1200, NOW - 300 * S), "dark-edge": None},
                now_ms=NOW,
            )
        ),  # fmt: skip
        jobs=tuple(
            job_rows(
                [progress("silver", backlog=None)],
                {"at_ms": NOW - 2 * S, "lag": 17},
                now_ms=NOW,
                pipeline=PipelineSettings(),
            )
        ),  # fmt: skip
        rates=quarantine_rates(dq_frame([dq(1, "range", 200, 10)])),
        twin=_twin(),
        quarantine_open=7,
    )
    m = _samples(health)
    edge = (("edge", "opcua-edge"),)
    assert m["plantlake_edge_buffer_records"] == {edge: 1200.0}  # the unreadable one is left out
    assert m["plantlake_edge_buffer_oldest_age_seconds"] == {edge: 300.0}
    silver, hot = (("job", "silver"),), (("job", HOT_PATH_JOB),)
    assert m["plantlake_job_batch_duration_seconds"] == {silver: 0.4}
    assert m["plantlake_job_rows_per_second"] == {silver: 2500.5}
    assert m["plantlake_job_backlog"] == {hot: 17.0}  # silver reported no backlog
    assert m["plantlake_job_last_progress_age_seconds"] == {silver: 5.0, hot: 2.0}
    assert m["plantlake_job_running"] == {silver: 1.0, hot: 1.0}
    assert m["plantlake_quarantine_failed_ratio"] == {(("rule", "range"),): 0.05}
    assert m["plantlake_quarantine_open"] == {(): 7.0}
    assert m["plantlake_twin_sensors"] == {
        (("status", "alive"),): 1.0, (("status", "dead"),): 1.0,
        (("status", "stale"),): 1.0, (("status", "no_data"),): 1.0,
    }  # fmt: skip
    assert m["plantlake_twin_dead_sensor"] == {(("asset", "s1/l1/pump-1"), ("sensor", "b")): 1.0}
    assert m["plantlake_lake_read_errors"] == {(): 0.0}


def test_metrics_of_a_host_where_nothing_runs():
    m = _samples(PipelineHealth(now_ms=NOW, jobs=(hot_path_row(None, now_ms=NOW),),
                                lake_errors=("gold.twin_state: unreachable",)))  # fmt: skip
    assert m["plantlake_job_running"] == {(("job", HOT_PATH_JOB),): 0.0}
    assert "plantlake_job_last_progress_age_seconds" not in m
    assert "plantlake_twin_sensors" not in m and "plantlake_quarantine_open" not in m
    assert m["plantlake_lake_read_errors"] == {(): 1.0}


def test_cached_health_reads_once_per_ttl():
    now = [0.0]
    loads = []

    def load() -> PipelineHealth:
        loads.append(now[0])
        return PipelineHealth(now_ms=len(loads))

    cache = CachedHealth(load, ttl_s=5.0, clock=lambda: now[0])
    assert [cache.get().now_ms for _ in range(10)] == [1] * 10
    now[0] = 4.9
    assert cache.get().now_ms == 1
    now[0] = 5.0
    assert cache.get().now_ms == 2
    assert loads == [0.0, 5.0]


def test_the_forwarder_status_has_the_fields_the_page_reads():
    """edge_rows reads ForwarderStats as forwarder_process writes it (asdict to JSON)."""
    written = json.loads(json.dumps(asdict(ForwarderStats(sent=3, last_error="x"))))
    assert set(forwarder()) == set(written)
    row = edge_rows({"e": (written, NOW)}, {"e": (1, NOW - S)}, now_ms=NOW)[0]
    assert (row.sent, row.last_error) == (3, "x")
