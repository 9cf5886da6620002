"""Work-order view models: the list filter, evidence made readable, the risk trend against its
threshold, and feedback validation."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from plantlake.core.contracts import GOLD_PREDICTIONS, GOLD_WORK_ORDER_FEEDBACK, GOLD_WORK_ORDERS
from plantlake.models.logic.work_orders import SIGNATURE_FEATURES, TREND_FEATURES, Alert, evidence
from plantlake.workbench.order_views import (
    FEEDBACK_ID,
    FeedbackInvalid,
    asset_choices,
    evidence_view,
    feedback_rows,
    find_order,
    new_feedback_id,
    order_filter,
    order_rows,
    parse_feedback,
    risk_chart,
    risk_series,
)

H = 3_600_000
T0 = 1_767_268_800_000
PUMP, MOTOR = "s1/l1/pump-1", "s1/l1/motor-1"


def _time(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


def order(wo: str, asset: str, status: str, opened_ms: int, **extra) -> dict:
    return {
        "work_order_id": wo, "asset": asset, "asset_class": "pump", "failure_mode": "failure",
        "status": status, "opened_at": _time(opened_ms), "opened_feature_time_ms": opened_ms,
        "opened_score": 0.8, "latest_feature_time_ms": opened_ms + H, "latest_score": 0.85,
        "alert_count": 2, "model_name": "failure-predictor", "model_version": "3",
        "model_kind": "failure", "threshold": 0.5, "horizon_hours": 24.0, "evidence": "{}",
        "closed_at": _time(extra.pop("closed_ms", None)), **extra,
    }  # fmt: skip


def frame(ref, rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(ref.column_names))


def feedback(fid: str, wo: str, verdict: str, at_ms: int, note: str | None = None) -> dict:
    return {"feedback_id": fid, "work_order_id": wo, "asset": PUMP, "failure_mode": "failure",
            "verdict": verdict, "note": note, "planner": "ann", "decided_at": _time(at_ms),
            "decided_at_ms": at_ms}  # fmt: skip


ORDERS = frame(GOLD_WORK_ORDERS, [
    order("wo-1", PUMP, "closed", T0, closed_ms=T0 + 5 * H, closed_reason="repair"),
    order("wo-2", PUMP, "open", T0 + 10 * H),
    order("wo-3", MOTOR, "open", T0 + 2 * H),
])  # fmt: skip
NO_FEEDBACK = frame(GOLD_WORK_ORDER_FEEDBACK, [])


def test_filter_defaults_to_open_orders():
    assert order_filter(None, None).status == "open"
    assert order_filter("bogus", "  ").status == "open"
    assert order_filter("all", f" {PUMP} ").asset == PUMP


@pytest.mark.parametrize(
    ("status", "asset", "ids"),
    [("open", None, ["wo-2", "wo-3"]), ("closed", None, ["wo-1"]),
     ("all", None, ["wo-2", "wo-3", "wo-1"]), ("all", PUMP, ["wo-2", "wo-1"]),
     ("open", "nowhere", [])],
)  # fmt: skip
def test_order_rows_filter_and_order(status, asset, ids):
    rows = order_rows(ORDERS, NO_FEEDBACK, order_filter(status, asset))
    assert [r.work_order_id for r in rows] == ids


def test_rows_carry_the_latest_verdict_and_times():
    history = frame(GOLD_WORK_ORDER_FEEDBACK, [
        feedback("fb-a", "wo-2", "acknowledged", T0 + 11 * H),
        feedback("fb-b", "wo-2", "done", T0 + 12 * H, note="bearing replaced"),
    ])  # fmt: skip
    rows = {r.work_order_id: r for r in order_rows(ORDERS, history, order_filter("all", None))}
    assert (rows["wo-2"].verdict, rows["wo-2"].verdict_label) == ("done", "Done")
    assert rows["wo-3"].verdict_label == "none yet"
    assert rows["wo-1"].closed_text == "2026-01-01 17:00:00 UTC"
    assert rows["wo-1"].opened_text == "2026-01-01 12:00:00 UTC"
    assert asset_choices(ORDERS) == [MOTOR, PUMP]


def test_find_order():
    assert find_order(ORDERS, "wo-3", NO_FEEDBACK).asset == MOTOR
    assert find_order(ORDERS, "wo-404", NO_FEEDBACK) is None
    assert find_order(frame(GOLD_WORK_ORDERS, []), "wo-1", NO_FEEDBACK) is None


# -- evidence -----------------------------------------------------------------------------------


def _evidence(kind: str = "failure") -> str:
    features = {"vibration_rms_mean_1h": 7.5, "temperature_mean_1h": 81.25,
                "vibration_rms_trend_24h": 0.2, "current_mean_1h": float("nan")}  # fmt: skip
    return evidence(Alert(
        asset=PUMP, asset_class="pump", model_name="failure-predictor", model_version="3",
        model_kind=kind, feature_time_ms=T0, score=0.912345, threshold=0.5, horizon_hours=24.0,
        features=features,
    ))  # fmt: skip


def test_evidence_of_a_failure_model_is_shown_by_failure_mode():
    view = evidence_view(_evidence())
    facts = dict(view.facts)
    assert facts["Model"] == "failure-predictor v3 (failure)"
    assert facts["Score"] == "0.9123"
    assert facts["Threshold"] == "0.5"
    assert facts["Horizon"] == "24 h"
    assert facts["Feature time"] == "2026-01-01T12:00:00Z"
    modes = dict(view.signatures)
    assert set(modes) == {"bearing_wear", "imbalance", "cavitation", "seal_leak", "winding"}
    assert dict(modes["bearing_wear"])["temperature_mean_1h"] == "81.25"
    # A feature with no data in its window says so, rather than showing NaN or 0.
    assert dict(modes["winding"])["current_mean_1h"] == "no data"
    assert [k for k, _ in view.trends] == sorted(TREND_FEATURES)
    # Every signature feature is shown once, under its modes, not again under "other".
    shown = {k for _, pairs in view.signatures for k, _ in pairs}
    assert shown == {f for m in modes for f in SIGNATURE_FEATURES[m]}
    assert not shown & {k for k, _ in view.features}
    assert json.loads(view.pretty)["score"] == pytest.approx(0.912345)
    assert view.problem is None


def test_evidence_of_an_anomaly_model_lists_its_features():
    view = evidence_view(_evidence("anomaly"))
    assert view.signatures == ()
    assert dict(view.features)["vibration_rms_mean_1h"] == "7.5"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [(None, "carries no evidence"), ("{not json", "not JSON"), ("[1, 2]", "not a JSON object")],
)
def test_unreadable_evidence_is_still_shown(raw, problem):
    view = evidence_view(raw)
    assert problem in (view.problem or "")
    assert view.pretty == (raw or "")


# -- risk trend ---------------------------------------------------------------------------------


def prediction(t: int, score: float, *, model: str = "failure-predictor", scored: int = 0) -> dict:
    return {"model_name": model, "model_version": "3", "asset": PUMP, "feature_time_ms": t,
            "score": score, "threshold": 0.5, "scored_at": _time(T0 + scored)}  # fmt: skip


def test_risk_series_keeps_one_score_per_time_of_the_orders_model():
    step = 5 * 60_000
    rows = [prediction(T0 + i * step, 0.1 * i) for i in range(4)]
    rows += [prediction(T0 + step, 0.99, scored=1000),  # rescored later by a new version
             prediction(T0 + 2 * step, float("nan"), scored=2000),
             prediction(T0, 0.7, model="anomaly-detector")]  # fmt: skip
    series = risk_series(frame(GOLD_PREDICTIONS, rows), model_name="failure-predictor")
    assert [(t - T0) // step for t, _ in series] == [0, 1, 3]  # the NaN rescoring drops time 2
    assert [round(s, 2) for _, s in series] == [0.0, 0.99, 0.3]
    assert risk_series(frame(GOLD_PREDICTIONS, []), model_name="x") == []


def test_risk_chart_draws_the_threshold_and_marks_alerts():
    step = 5 * 60_000
    series = [(T0 + i * step, s) for i, s in enumerate([0.1, 0.2, 0.6, 0.8, 0.3])]
    chart = risk_chart(series, threshold=0.5, opened_ms=T0 + 2 * step, closed_ms=T0 + 99 * H)
    assert chart.points == 5 and len(chart.lines) == 1
    assert len(chart.alerts) == 2  # 0.6 and 0.8
    # SVG y grows downwards: the threshold sits below the alerts and above the other points.
    points = [tuple(map(float, p.split(","))) for p in chart.lines[0].split()]
    assert chart.threshold_y is not None
    assert all(y < chart.threshold_y for _, y in chart.alerts)
    assert points[0][1] > chart.threshold_y
    assert 0 <= chart.threshold_y <= chart.inner_height
    assert [label for _, label in chart.markers] == ["opened"]  # the close is out of range
    assert chart.markers[0][0] == points[2][0]


def test_risk_chart_breaks_where_scoring_paused_and_handles_no_scores():
    series = [(T0, 0.1), (T0 + 5 * 60_000, 0.2), (T0 + 5 * H, 0.3)]
    assert len(risk_chart(series, threshold=0.5).lines) == 2
    assert risk_chart([], threshold=0.5).empty
    single = risk_chart([(T0, 0.9)], threshold=None)
    assert single.points == 1 and single.threshold_y is None and not single.alerts


# -- feedback ------------------------------------------------------------------------------------


def test_feedback_ids_are_fresh_and_well_formed():
    first, second = new_feedback_id(), new_feedback_id()
    assert first != second
    assert FEEDBACK_ID.fullmatch(first)


def test_parse_feedback():
    fid = new_feedback_id()
    entry = parse_feedback({"feedback_id": fid, "verdict": "false_alarm", "note": "  "})
    assert (entry.feedback_id, entry.verdict, entry.note) == (fid, "false_alarm", None)
    done = parse_feedback({"feedback_id": fid, "verdict": "done", "note": " swapped bearing "})
    assert done.note == "swapped bearing"


@pytest.mark.parametrize(
    ("form", "message"),
    [({"feedback_id": "", "verdict": "done", "note": "x"}, "feedback id"),
     ({"feedback_id": "fb-../../etc", "verdict": "done", "note": "x"}, "feedback id"),
     ({"verdict": "approve"}, "Choose one of"),
     ({"verdict": "done", "note": ""}, "what was done"),
     ({"verdict": "acknowledged", "note": "x" * 2001}, "longer than 2000")],
)  # fmt: skip
def test_parse_feedback_refuses(form, message):
    form.setdefault("feedback_id", new_feedback_id())
    with pytest.raises(FeedbackInvalid, match=message):
        parse_feedback(form)


def test_feedback_rows_of_one_order_newest_first():
    history = frame(GOLD_WORK_ORDER_FEEDBACK, [
        feedback("fb-a", "wo-2", "acknowledged", T0 + H),
        feedback("fb-b", "wo-2", "done", T0 + 3 * H, note="replaced"),
        feedback("fb-c", "wo-3", "false_alarm", T0 + 2 * H),
    ])  # fmt: skip
    rows = feedback_rows(history, "wo-2")
    assert [(r.feedback_id, r.label) for r in rows] == [("fb-b", "Done"), ("fb-a", "Acknowledged")]
    assert rows[0].note == "replaced" and rows[1].note is None
    assert rows[0].decided_text == "2026-01-01 15:00:00 UTC"
    assert feedback_rows(NO_FEEDBACK, "wo-2") == []


def test_risk_chart_axis_labels_are_rounded_and_a_flat_series_has_a_scale():
    noisy = risk_chart([(T0, 5.55e-17), (T0 + H, 0.85)], threshold=0.5)
    assert [label for _, label in noisy.y_ticks] == ["0", "0.459", "0.918"]
    flat = risk_chart([(T0, -2.0), (T0 + H, -2.0)], threshold=None)
    assert [label for _, label in flat.y_ticks] == ["-2", "-1.5", "-1"]
    assert {float(p.split(",")[1]) for p in flat.lines[0].split()} == {flat.inner_height}
