import math
import statistics
from collections import Counter, defaultdict

import orjson
import pytest

from plantlake.core.contracts import record_errors
from plantlake.core.errors import ConfigError
from plantlake.core.records import Quality
from plantlake.pipelines.transforms.expectations import load_rules
from plantlake.simulator.historian import (
    DAY_MS,
    HISTORIAN,
    backfill_span,
    historian_readings,
    parse_step,
)
from plantlake.simulator.plant import (
    HOUR_MS,
    build_plant,
    device_time_ms,
    health,
    maintenance_log,
)

PLANT = build_plant(7, start_ms=1_767_225_600_000)
MINUTE = 60_000


def _readings(start_ms, end_ms, step_ms, assets=None):
    return list(
        historian_readings(PLANT, start_ms=start_ms, end_ms=end_ms, step_ms=step_ms, assets=assets)
    )


@pytest.mark.parametrize(
    ("text", "ms"), [("30s", 30_000), ("1m", MINUTE), ("5m", 5 * MINUTE), ("1h", HOUR_MS),
                     (" 250ms ", 250)],
)  # fmt: skip
def test_parse_step(text, ms):
    assert parse_step(text) == ms


@pytest.mark.parametrize("text", ["", "5", "0m", "-1m", "1.5m", "5x", "m"])
def test_parse_step_refuses_what_is_not_a_positive_duration(text):
    with pytest.raises(ConfigError, match="positive duration"):
        parse_step(text)


def test_one_reading_per_sensor_per_step_on_the_grid():
    start, steps = PLANT.start_ms + 3 * HOUR_MS, 30
    readings = _readings(start, start + steps * MINUTE, MINUTE)
    sensors = sum(len(a.sensors) for a in PLANT.assets)
    assert sensors == 48
    assert len(readings) == steps * sensors
    per_step = Counter(r.receive_time_ms for r in readings)
    assert sorted(per_step) == [start + k * MINUTE for k in range(steps)]
    assert set(per_step.values()) == {sensors}
    assert len({(r.asset, r.sensor, r.receive_time_ms) for r in readings}) == len(readings)
    assert {(r.source_protocol, r.source_node, r.sequence) for r in readings} == {
        (HISTORIAN, HISTORIAN, None)
    }


def test_end_is_exclusive_and_an_empty_span_yields_nothing():
    start = PLANT.start_ms
    assert len(_readings(start, start + 5 * MINUTE + 1, MINUTE)) == 6 * 48
    assert _readings(start, start, MINUTE) == []


def test_each_sensor_comes_in_time_order():
    readings = _readings(PLANT.start_ms, PLANT.start_ms + 20 * MINUTE, MINUTE)
    times = defaultdict(list)
    for r in readings:
        times[(r.asset, r.sensor)].append(r.event_time_ms)
    assert all(t == sorted(t) and len(set(t)) == len(t) for t in times.values())


def test_units_are_the_ones_the_device_reports():
    readings = _readings(PLANT.start_ms, PLANT.start_ms + MINUTE, MINUTE)
    for r in readings:
        assert r.unit == (PLANT.asset(r.asset).sensor(r.sensor).unit or None)
    units = {r.unit for r in readings}
    # Devices report in other units than silver's canonical ones on purpose.
    assert {"degC", "degF", "K", "bar", "psi", "A", "rpm", "m3/h", "mm/s", None} <= units
    # A bearing runs at 30..95 degC, whatever unit its transmitter reports in.
    to_c = {"degF": lambda v: (v - 32) / 1.8, "K": lambda v: v - 273.15, "degC": lambda v: v}
    temps = [(r.unit, r.value) for r in readings if r.sensor == "bearing_temperature"]
    assert {u for u, _ in temps} == set(to_c)
    assert all(25 < to_c[u](v) < 95 for u, v in temps), temps


def test_event_time_is_the_device_clock_and_receive_time_the_archive_time():
    day = 10 * DAY_MS
    start = PLANT.start_ms + day
    readings = _readings(start, start + 3 * MINUTE, MINUTE)
    drifting = [a for a in PLANT.assets if a.clock_drift_ppm]
    assert len(drifting) == 1
    for r in readings:
        asset = PLANT.asset(r.asset)
        assert r.event_time_ms == device_time_ms(asset, PLANT, r.receive_time_ms)
        if asset.clock_drift_ppm:
            # 500 ppm over ten days: the device clock is 432 s ahead (and 30 ms more a minute).
            minutes = (r.receive_time_ms - start) // MINUTE
            assert r.event_time_ms - r.receive_time_ms == 432_000 + 30 * minutes
        else:
            assert r.event_time_ms == r.receive_time_ms


def test_readings_keep_the_lake_record_contract_and_pass_its_event_time_rules():
    readings = _readings(
        PLANT.start_ms + 29 * DAY_MS, PLANT.start_ms + 29 * DAY_MS + MINUTE, MINUTE
    )
    for r in readings:
        assert record_errors(orjson.loads(orjson.dumps(r.to_record()))) == []
    # Silver quarantines readings received longer than this after their event time: a weeks-old
    # backfill passes only because the receive time is the archive time, not the export time.
    (stale,) = [rule for rule in load_rules() if rule.name == "event_time_not_stale"]
    limit_ms = stale.params.max_delay_seconds * 1000
    assert all(r.receive_time_ms - r.event_time_ms <= limit_ms for r in readings)


def test_nan_readings_go_as_bad_with_no_value_and_nothing_is_skipped():
    (source,) = [a for a in PLANT.assets if a.stuck_from_ms]  # its current also gives NaNs
    start = PLANT.start_ms
    readings = _readings(start, start + 3600 * 1000, 1000, assets=[source.path])
    assert len(readings) == 3600 * len(source.sensors)
    current = [r for r in readings if r.sensor == "motor_current"]
    bad = [r for r in current if r.quality is Quality.BAD]
    assert bad and all(r.value is None for r in bad)
    assert all(r.value is not None and not math.isnan(r.value) for r in readings if r not in bad)
    assert orjson.loads(orjson.dumps(bad[0].to_record()))["value"] is None


def test_failures_show_as_degradation_before_them_and_end_with_the_repair():
    failures = [e for e in maintenance_log(PLANT, PLANT.start_ms + 30 * DAY_MS)
                if e.kind == "failure"]  # fmt: skip
    # Every pump and motor fails in a month; presses fail less often.
    assert {a.path for a in PLANT.assets if a.kind != "press"} <= {e.asset for e in failures}
    step = 10 * MINUTE
    checked = 0
    for event in failures:
        asset = PLANT.asset(event.asset)
        failure = next(f for f in PLANT.failures[asset.path] if f.failure_ms == event.time_ms)
        span = failure.failure_ms - failure.onset_ms
        if event.failure_mode != "imbalance" or failure.residual or span < 12 * HOUR_MS:
            continue
        late = _readings(failure.failure_ms - span // 5, failure.failure_ms, step, [asset.path])
        healthy_at = failure.onset_ms - DAY_MS
        assert health(PLANT, asset, healthy_at) == 1.0
        healthy = _readings(healthy_at, healthy_at + 12 * HOUR_MS, step, [asset.path])
        after = _readings(failure.repaired_ms, failure.repaired_ms + 12 * HOUR_MS, step,
                          [asset.path])  # fmt: skip

        def running_median(rows):  # vibration of the machine running (a stop reads ~0)
            return statistics.median(
                r.value for r in rows if r.sensor == "vibration" and r.value > 0.5
            )

        assert running_median(late) > 1.5 * running_median(healthy), failure
        if failure.fixed:
            assert running_median(after) < 1.3 * running_median(healthy), failure
        checked += 1
    assert checked


def test_unknown_assets_and_bad_steps_are_refused():
    with pytest.raises(ConfigError, match="no asset 'plant1/line9/pump-99'"):
        historian_readings(PLANT, start_ms=0, end_ms=1, step_ms=1, assets=["plant1/line9/pump-99"])
    with pytest.raises(ConfigError, match="positive"):
        historian_readings(PLANT, start_ms=0, end_ms=1, step_ms=0)


def test_backfill_span_ends_now_on_the_step_grid_from_a_plant_started_days_ago():
    now = 1_795_600_123_456  # 2026-11-25T09:55:23Z
    span = backfill_span(days=30, step_ms=5 * MINUTE, now_ms=now)
    assert span.end_ms == now
    assert span.first_ms % (5 * MINUTE) == 0 and now - 30 * DAY_MS <= span.first_ms
    assert span.steps == 30 * 288
    assert (
        span.first_ms + span.steps * 5 * MINUTE
        >= now
        > span.first_ms + (span.steps - 1) * 5 * MINUTE
    )
    # The plant starts at the UTC midnight before: a re-run the same day rebuilds the same plant
    # (and the same grid), so silver deduplicates what it sends again.
    assert (
        span.plant_start_ms % DAY_MS == 0 and 0 <= now - 30 * DAY_MS - span.plant_start_ms < DAY_MS
    )
    later = backfill_span(days=30, step_ms=5 * MINUTE, now_ms=now + 3 * HOUR_MS)
    assert later.plant_start_ms == span.plant_start_ms
    assert (later.first_ms - span.first_ms) % (5 * MINUTE) == 0


def test_backfill_span_of_two_hours_at_one_minute():
    span = backfill_span(days=2 / 24, step_ms=MINUTE, now_ms=1_795_600_123_456)
    assert span.steps == 120


def test_backfill_needs_positive_days():
    with pytest.raises(ConfigError, match="positive number of days"):
        backfill_span(days=0, step_ms=MINUTE, now_ms=1_795_600_123_456)


def test_cli_offers_each_edge_source_and_the_history_backfill():
    import typer.main

    from plantlake.app.cli import EDGE_SOURCES, app
    from plantlake.app.edge_sources import SOURCES

    assert EDGE_SOURCES == SOURCES
    ingest = typer.main.get_command(app).commands["ingest"]
    assert set(ingest.commands) == {*SOURCES, "history"}
