"""Work-order rules: one open order per asset and failure mode, updates, closes, stable ids."""

import json
from dataclasses import replace

import pytest

from plantlake.models.logic.work_orders import (
    ANOMALY_MODE,
    CLOSED,
    OPEN,
    Alert,
    RepairOrInspection,
    WorkOrder,
    alarm_record,
    failure_mode,
    plan_work_orders,
    work_order_id,
)

H = 3_600_000
PUMP = "plant1/line1/pump-01"
PRESS = "plant1/line2/press-01"


def alert(asset=PUMP, t=10 * H, score=0.9, *, cls="pump", kind="failure", version="3"):
    return Alert(
        asset=asset, asset_class=cls, model_name="failure-predictor", model_version=version,
        model_kind=kind, feature_time_ms=t, score=score, threshold=0.5, horizon_hours=24.0,
        features={"vibration_rms_mean_1h": 7.5, "temperature_mean_1h": 81.0,
                  "vibration_rms_trend_24h": 0.2, "pressure_mean_1h": float("nan")},
    )  # fmt: skip


def apply(orders: dict[str, WorkOrder], plan) -> dict[str, WorkOrder]:
    """What a MERGE on work_order_id does with the plan."""
    return {**orders, **{o.work_order_id: o for o in plan.orders}}


def plan(alerts, orders=(), maintenance=(), now_ms=99 * H):
    return plan_work_orders(alerts, list(orders), maintenance, now_ms=now_ms)


def test_a_failure_model_predicts_a_failure_not_its_mode_and_anomaly_models_have_their_own():
    assert failure_mode("pump", "failure") == failure_mode("press", "failure") == "failure"
    assert failure_mode("press", "anomaly") == ANOMALY_MODE


def test_the_evidence_shows_the_signature_of_every_mode_the_class_has():
    order = plan([alert(t=10 * H, score=0.9)]).orders[0]
    evidence = json.loads(order.evidence)
    assert set(evidence["signatures"]) == {"bearing_wear", "imbalance", "cavitation", "seal_leak",
                                           "winding"}  # fmt: skip
    assert evidence["signatures"]["bearing_wear"]["vibration_rms_mean_1h"] == 7.5
    assert "pressure_per_flow_1h" in evidence["signatures"]["cavitation"]


def test_several_alerting_feature_times_open_one_order_with_the_latest_evidence():
    p = plan([alert(t=12 * H, score=0.7), alert(t=10 * H, score=0.6), alert(t=11 * H, score=0.95)])
    assert len(p.orders) == 1 and len(p.opened) == 1
    order = p.orders[0]
    assert order.status == OPEN and order.failure_mode == "failure"
    assert order.work_order_id == work_order_id(PUMP, "failure", 10 * H)
    assert order.opened_feature_time_ms == 10 * H and order.opened_score == 0.6
    assert order.latest_feature_time_ms == 12 * H and order.alert_count == 3
    evidence = json.loads(order.evidence)
    assert evidence["score"] == 0.7 and evidence["model_version"] == "3"
    assert evidence["feature_time_ms"] == 12 * H
    assert evidence["features"]["vibration_rms_mean_1h"] == 7.5
    assert evidence["trends_24h"]["vibration_rms_trend_24h"] == 0.2
    assert [o.work_order_id for o in p.to_announce] == [order.work_order_id]


def test_a_new_alert_for_an_open_order_updates_it_and_never_opens_a_second():
    first = plan([alert(t=10 * H)])
    table = apply({}, first)
    second = plan([alert(t=13 * H, score=0.99, version="4")], orders=table.values())
    assert second.opened == frozenset() and len(second.updated) == 1
    table = apply(table, second)
    [order] = table.values()
    assert order.status == OPEN and order.latest_score == 0.99 and order.model_version == "4"
    assert json.loads(order.evidence)["model_version"] == "4"
    assert order.opened_feature_time_ms == 10 * H


def test_modes_and_assets_are_separate_orders():
    p = plan([alert(), alert(kind="anomaly"), alert(PRESS, cls="press")])
    modes = sorted((o.asset, o.failure_mode) for o in p.orders)
    assert modes == [(PUMP, "anomaly"), (PUMP, "failure"), (PRESS, "failure")]
    press = next(o for o in p.orders if o.asset == PRESS)
    assert "pressure_mean_1h" in json.loads(press.evidence)["features"]
    assert json.loads(press.evidence)["features"]["pressure_mean_1h"] is None  # NaN -> null


def test_a_repair_after_the_opening_closes_the_order_and_a_later_alert_opens_a_new_one():
    table = apply({}, plan([alert(t=10 * H)]))
    repair = RepairOrInspection(PUMP, "repair", 15 * H)
    p = plan([], orders=table.values(), maintenance=[repair])
    assert len(p.closed) == 1 and p.opened == frozenset()
    table = apply(table, p)
    [order] = table.values()
    assert order.status == CLOSED and order.closed_event_time_ms == 15 * H
    assert "repair" in order.closed_reason and order.closed_event == "repair"

    again = plan([alert(t=20 * H)], orders=table.values(), maintenance=[repair])
    assert len(again.opened) == 1
    table = apply(table, again)
    assert sorted(o.status for o in table.values()) == [CLOSED, OPEN]


def test_failures_and_maintenance_before_the_opening_do_not_close_it():
    table = apply({}, plan([alert(t=10 * H)]))
    events = [
        RepairOrInspection(PUMP, "inspection", 9 * H),
        RepairOrInspection(PUMP, "failure", 11 * H),
        RepairOrInspection(PRESS, "repair", 12 * H),
    ]
    p = plan([], orders=table.values(), maintenance=events)
    assert p.orders == ()


def test_a_backlog_replays_in_event_time():
    # Alerts before and after a repair, scored in one batch: two orders, the first closed.
    repair = RepairOrInspection(PUMP, "repair", 15 * H)
    p = plan([alert(t=t * H) for t in (10, 12, 15, 18, 19)], maintenance=[repair])
    orders = sorted(p.orders, key=lambda o: o.opened_feature_time_ms)
    assert [(o.opened_feature_time_ms, o.status) for o in orders] == [
        (10 * H, CLOSED),
        (18 * H, OPEN),
    ]
    # Features at 15h use readings before the repair, so they are the first order's evidence.
    assert orders[0].latest_feature_time_ms == 15 * H and orders[0].alert_count == 3
    assert [o.opened_feature_time_ms for o in p.to_announce] == [18 * H]


def test_a_late_alert_from_a_closed_orders_period_opens_nothing():
    repair = RepairOrInspection(PUMP, "repair", 15 * H)
    table = apply({}, plan([alert(t=10 * H)], maintenance=[repair]))
    assert [o.status for o in table.values()] == [CLOSED]
    p = plan([alert(t=12 * H)], orders=table.values(), maintenance=[repair])
    assert p.orders == ()


@pytest.mark.parametrize("state_seen_by_retry", ["before", "after"])
def test_a_retried_batch_opens_no_duplicate(state_seen_by_retry):
    alerts = [alert(t=10 * H), alert(t=11 * H), alert(PRESS, cls="press")]
    first = plan(alerts)
    table = apply({}, first)
    # A retry plans either from the table as the failed attempt left it or as before it.
    seen = table.values() if state_seen_by_retry == "after" else []
    retry = plan(alerts, orders=seen, now_ms=100 * H)
    table = apply(table, retry)
    assert len(table) == 2
    assert {o.work_order_id for o in table.values()} == {o.work_order_id for o in first.orders}
    if state_seen_by_retry == "after":
        assert retry.orders == () and retry.opened == frozenset()


def test_an_open_order_whose_alarm_was_never_acknowledged_is_announced_again():
    table = apply({}, plan([alert(t=10 * H)]))
    p = plan([], orders=table.values())
    assert p.orders == () and len(p.to_announce) == 1
    acknowledged = {k: replace(o, alerted_at_ms=100 * H) for k, o in table.items()}
    assert plan([alert(t=12 * H)], orders=acknowledged.values()).to_announce == ()


def test_the_alarm_carries_the_work_order_id_and_the_evidence():
    [order] = plan([alert(t=10 * H)]).orders
    record = alarm_record(order)
    assert record["work_order_id"] == order.work_order_id and record["asset"] == PUMP
    assert record["evidence"]["model_version"] == "3" and record["score"] == 0.9
    json.dumps(record)  # JSON-serialisable as produced


def test_work_order_ids_are_deterministic_and_distinct():
    first = work_order_id(PUMP, "failure", 10 * H)
    assert first == work_order_id(PUMP, "failure", 10 * H)
    keys = [(PUMP, "bearing_wear", 10), (PUMP, "anomaly", 10), (PRESS, "bearing_wear", 10),
            (PUMP, "bearing_wear", 11)]  # fmt: skip
    ids = {work_order_id(asset, mode, hours * H) for asset, mode, hours in keys}
    assert len(ids) == 4


def test_rows_round_trip():
    [order] = plan([alert()]).orders
    assert WorkOrder.from_row(order.as_row()) == order
