"""Twin overview view model: dead and stale first and never healthy, no-data assets, ages and
sparklines."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantlake.core.contracts import (
    GOLD_TELEMETRY_1M,
    GOLD_TWIN_STATE,
    REFERENCE_ASSET_REGISTRY,
)
from plantlake.workbench.charts import sparkline
from plantlake.workbench.display import format_age, format_value, to_ms
from plantlake.workbench.twin_views import NO_DATA, twin_overview

NOW = 1_767_268_800_000  # 2026-01-01T12:00:00Z
MIN = 60_000
PUMP, MOTOR, PRESS = "s1/l1/pump-1", "s1/l1/motor-1", "s1/l2/press-1"


def _time(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def twin_row(asset: str, sensor: str, *, status: str = "alive", age_ms: int = 10_000,
             slo_ms: int = 180_000, reason: str = "", value: float = 42.0) -> dict:  # fmt: skip
    event = NOW - age_ms
    return {
        "asset": asset, "sensor": sensor, "asset_class": "pump", "quantity": "temperature",
        "value": value, "unit": "degC", "quality": "Good", "event_time": _time(event),
        "event_time_ms": event, "receive_time": _time(event), "source_protocol": "opcua",
        "source_node": "edge-a", "sequence": 1, "kafka_topic": "t", "kafka_partition": 0,
        "kafka_offset": 1, "status": status, "status_reason": reason,
        "status_since": _time(event), "status_as_of": _time(NOW - 1000),
        "freshness_slo_ms": slo_ms, "rule_state": None,
    }  # fmt: skip


def frame(ref, rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(ref.column_names))


def registry_row(asset: str, sensor: str, *, valid_to: int | None = None) -> dict:
    return {
        "asset": asset, "sensor": sensor, "asset_class": "press", "quantity": "pressure",
        "valid_from": _time(NOW - 86_400_000),
        "valid_to": None if valid_to is None else _time(valid_to),
    }  # fmt: skip


def overview(twin: list[dict], registry: list[dict] = (), trends=None):  # type: ignore[assignment]
    return twin_overview(
        frame(GOLD_TWIN_STATE, twin),
        frame(REFERENCE_ASSET_REGISTRY, list(registry)),
        trends,
        now_ms=NOW,
    )


def test_one_dead_sensor_makes_its_asset_dead_and_first():
    view = overview([
        twin_row(PUMP, "flow"), twin_row(PUMP, "bearing_temperature"),
        twin_row(MOTOR, "current"),
        twin_row(MOTOR, "winding_temperature", status="dead",
                 reason="device edge-a/motor sent a death certificate"),
    ])  # fmt: skip
    assert [a.asset for a in view.assets] == [MOTOR, PUMP]
    motor = view.assets[0]
    assert (motor.status, motor.label) == ("dead", "DEAD")
    assert [s.sensor for s in motor.sensors] == ["winding_temperature", "current"]
    assert motor.sensors[0].status_reason.startswith("device edge-a/motor")
    assert motor.reason == "1 dead of 2 sensors"
    assert view.assets[1].status == "alive"
    assert view.sensor_counts == {"dead": 1, "stale": 0, NO_DATA: 0, "alive": 3}
    assert view.asset_counts == {"dead": 1, "stale": 0, NO_DATA: 0, "alive": 1}
    assert [(s.asset, s.sensor) for s in view.dead_sensors] == [(MOTOR, "winding_temperature")]


def test_assets_sorted_dead_stale_no_data_alive():
    view = overview(
        [twin_row("a/alive", "x"), twin_row("b/stale", "x", status="stale"),
         twin_row("c/dead", "x", status="dead")],
        [registry_row("d/unseen", "pressure")],
    )  # fmt: skip
    assert [(a.asset, a.status) for a in view.assets] == [
        ("c/dead", "dead"), ("b/stale", "stale"), ("d/unseen", NO_DATA), ("a/alive", "alive"),
    ]  # fmt: skip
    assert [a.label for a in view.assets] == ["DEAD", "STALE", "NO DATA", "alive"]


def test_alive_row_older_than_its_slo_is_shown_stale():
    """The hot path may have stopped judging: a value past its SLO never reads as alive."""
    view = overview([twin_row(PUMP, "flow", age_ms=10 * MIN, slo_ms=3 * MIN)])
    sensor = view.assets[0].sensors[0]
    assert sensor.status == "stale"
    assert "180 s freshness SLO" in sensor.status_reason
    assert sensor.since_ms == NOW - 10 * MIN + 3 * MIN
    assert view.assets[0].status == "stale"


def test_unknown_status_is_not_healthy():
    sensor = overview([twin_row(PUMP, "flow", status="weird")]).assets[0].sensors[0]
    assert sensor.status == "stale"
    assert "unknown status 'weird'" in sensor.status_reason


def test_registry_sensors_without_twin_rows_are_no_data():
    view = overview(
        [twin_row(PUMP, "flow")],
        [registry_row(PUMP, "flow"), registry_row(PUMP, "discharge_pressure"),
         registry_row(PRESS, "hydraulic_pressure"), registry_row(PRESS, "ram_position")],
    )  # fmt: skip
    by_asset = {a.asset: a for a in view.assets}
    pump = by_asset[PUMP]
    assert pump.status == NO_DATA  # one unseen sensor: the asset is not healthy
    assert [(s.sensor, s.status) for s in pump.sensors] == [
        ("discharge_pressure", NO_DATA), ("flow", "alive"),
    ]  # fmt: skip
    press = by_asset[PRESS]
    assert press.status == NO_DATA
    assert press.reason == "no data from any of its 2 sensors"
    assert all(s.value_text == "-" and s.age_text == "-" for s in press.sensors)
    assert press.asset_class == "press"


def test_registry_rows_no_longer_valid_are_ignored():
    view = overview([], [registry_row(PRESS, "old_sensor", valid_to=NOW - MIN)])
    assert view.empty


def test_value_and_age_of_a_sensor():
    sensor = overview([twin_row(PUMP, "flow", age_ms=95_000, value=72.3456)]).assets[0].sensors[0]
    assert sensor.value_text == "72.35 degC"
    assert sensor.age_s == 95.0
    assert sensor.age_text == "1 min"


def test_empty_lake_is_empty():
    view = overview([])
    assert view.empty
    assert view.judged_ms is None
    assert view.sensor_counts == {"dead": 0, "stale": 0, NO_DATA: 0, "alive": 0}


def test_sparklines_come_from_one_trend_frame():
    trends = frame(GOLD_TELEMETRY_1M, [
        {"asset": PUMP, "sensor": "flow", "window_start_ms": NOW - m * MIN, "mean": float(m)}
        for m in range(1, 6)
    ] + [{"asset": MOTOR, "sensor": "current", "window_start_ms": NOW - MIN, "mean": 3.0}])  # fmt: skip
    view = overview([twin_row(PUMP, "flow"), twin_row(MOTOR, "current"),
                     twin_row(MOTOR, "speed")], trends=trends)  # fmt: skip
    sensors = {(s.asset, s.sensor): s for a in view.assets for s in a.sensors}
    flow = sensors[(PUMP, "flow")].trend
    assert flow is not None and len(flow.lines) == 1
    assert len(flow.lines[0].split()) == 5
    assert (flow.low, flow.high) == (1.0, 5.0)
    assert sensors[(MOTOR, "speed")].trend is not None
    assert sensors[(MOTOR, "speed")].trend.empty


# -- display -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.4, "0 s"), (59.9, "59 s"), (60, "1 min"), (3599, "59 min"),
     (3600, "1 h"), (7500, "2 h 5 min"), (86_400 * 3 + 3600 * 4, "3 d 4 h"), (86_400, "1 d"),
     (-30, "in the future"), (float("nan"), "-")],
)  # fmt: skip
def test_format_age(seconds, shown):
    assert format_age(seconds) == shown


def test_to_ms_reads_lake_values():
    moment = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert to_ms(moment) == NOW
    assert to_ms(moment.replace(tzinfo=None)) == NOW  # naive is UTC, as Delta timestamps are
    assert to_ms(pd.Timestamp(NOW, unit="ms", tz="UTC")) == NOW
    assert to_ms(NOW) == NOW
    assert to_ms(pd.NaT) is None
    assert to_ms(float("nan")) is None
    assert to_ms(None) is None


def test_format_value():
    assert format_value(None, "degC") == "-"
    assert format_value(0.00123456, "mm/s") == "0.001235 mm/s"
    assert format_value(12.0, None) == "12"


# -- sparklines ---------------------------------------------------------------------------------


def _coords(line: str) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in line.split()]  # type: ignore[misc]


def test_sparkline_spans_the_fixed_window_and_breaks_at_gaps():
    start, end = NOW - 120 * MIN, NOW
    points = [(start + m * MIN, float(m)) for m in range(0, 30)]  # the first half hour
    points += [(end - m * MIN, 1.0) for m in range(0, 10)]  # the last ten minutes
    line = sparkline(points, start_ms=start, end_ms=end, width=122, height=24)
    assert len(line.lines) == 2
    first, second = _coords(line.lines[0]), _coords(line.lines[1])
    assert first[0][0] == 2.0  # left edge (pad 2)
    assert second[-1][0] == 120.0  # right edge: the newest point is now
    assert line.last == second[-1]
    # The highest value is at the top of the box, the lowest at the bottom.
    assert min(y for _, y in first) == 2.0 and max(y for _, y in first) == 22.0


def test_sparkline_of_a_sensor_that_went_quiet_ends_short_of_the_right_edge():
    start, end = NOW - 120 * MIN, NOW
    line = sparkline([(start + m * MIN, 5.0) for m in range(60)], start_ms=start, end_ms=end)
    assert line.last is not None and line.last[0] < line.width / 2 + 2
    assert {y for _, y in _coords(line.lines[0])} == {12.0}  # a flat series sits mid-height


def test_sparkline_drops_missing_and_out_of_window_values():
    start, end = NOW - 120 * MIN, NOW
    points = [(start - MIN, 1.0), (start + MIN, float("nan")), (start + 2 * MIN, None),
              (start + 3 * MIN, 2.0), (end + MIN, 9.0)]  # fmt: skip
    line = sparkline(points, start_ms=start, end_ms=end)
    assert (line.low, line.high) == (2.0, 2.0)
    assert len(line.lines) == 1 and len(_coords(line.lines[0])) == 2  # a lone point, drawn twice
    assert sparkline([], start_ms=start, end_ms=end).empty


@given(st.lists(st.tuples(st.integers(0, 7_200_000), st.floats(-1e9, 1e9)), max_size=200))
def test_sparkline_stays_inside_its_box(points):
    line = sparkline(points, start_ms=0, end_ms=7_200_000, width=120, height=24)
    for part in line.lines:
        for x, y in _coords(part):
            assert 0 <= x <= 120 and 0 <= y <= 24
