"""Issue 10: the quarantine queue's view models, without a lake: filters, rows and their review
state, what a decision refuses, bulk digests and the failed rules' limits for the plot."""

from __future__ import annotations

import datetime as dt

import pytest

from plantlake.core.contracts import CONFIRM_FAULT, NOTE, RELEASE
from plantlake.pipelines.transforms.expectations import load_rules
from plantlake.workbench.quarantine_views import (
    FilterError,
    QueueFilter,
    bulk_decision_id,
    bulk_digest,
    bulk_targets,
    is_bulk_id,
    page_of,
    parse_filter,
    queue_row,
    queue_rows,
    refusal,
    review_of,
    rule_limits,
    to_canonical,
    unit_table,
)
from plantlake.workbench.review_store import ReadingKey
from tests.unit.workbench_lake import T0_MS, UNIT_ROWS, quarantine_row

UTC = dt.UTC


def decision(key: ReadingKey, decision_id: str, kind: str = RELEASE) -> dict:
    return {
        "decision_id": decision_id, "decision": kind, "reviewer": "ann", "note": None,
        "decided_at": dt.datetime(2026, 1, 1, 13, tzinfo=UTC), "kafka_topic": key.kafka_topic,
        "kafka_partition": key.kafka_partition, "kafka_offset": key.kafka_offset,
    }  # fmt: skip


def key(offset: int) -> ReadingKey:
    return ReadingKey("plantlake.telemetry", 0, offset)


# -- filters -----------------------------------------------------------------------------------


def test_filter_defaults_to_open_readings_of_every_rule():
    flt = parse_filter({})
    assert (flt.status, flt.rule, flt.since, flt.page) == ("open", "", None, 1)


def test_filter_times_from_a_form_are_utc_and_round_trip():
    flt = parse_filter({"since": "2026-01-01T11:00", "until": "2026-01-01T13:30+01:00",
                        "line": "/site1/line1/", "page": "3", "rule": "sensor_stuck"})  # fmt: skip
    assert flt.since == dt.datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert flt.until == dt.datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert flt.line == "site1/line1"
    assert parse_filter(flt.params()) == flt
    precise = parse_filter({"since": "2026-01-01T11:00:30.250"})
    assert parse_filter(precise.params()) == precise
    assert "page" not in flt.params(page=1)


@pytest.mark.parametrize(
    "params",
    [{"status": "closed"}, {"since": "yesterday"}, {"page": "two"},
     {"since": "2026-01-01T12:00", "until": "2026-01-01T11:00"}],
)  # fmt: skip
def test_a_bad_filter_names_the_field(params):
    with pytest.raises(FilterError) as err:
        parse_filter(params)
    assert any(name in str(err.value) for name in params)


def test_filter_matches_rule_line_sensor_status_and_time():
    stuck = queue_row(quarantine_row(offset=1, rules=[("sensor_stuck", "same value 12 min")]), None)
    other_line = queue_row(quarantine_row(offset=2, asset="site1/line2/fan-1"), None)
    assert QueueFilter(rule="sensor_stuck").matches(stuck)
    assert not QueueFilter(rule="sensor_stuck").matches(other_line)
    assert QueueFilter(line="site1/line2").matches(other_line)
    assert not QueueFilter(line="site1/line2").matches(stuck)
    assert not QueueFilter(line="site1/line").matches(stuck)  # a line, not a prefix of text
    assert not QueueFilter(sensor="flow").matches(stuck)
    t0 = dt.datetime.fromtimestamp(T0_MS / 1000, tz=UTC)
    assert QueueFilter(since=t0, until=t0 + dt.timedelta(seconds=1)).matches(stuck)
    assert not QueueFilter(until=t0).matches(stuck)  # until is exclusive


def test_a_note_leaves_a_reading_open_a_release_or_fault_settles_it():
    rows = {
        kind: queue_row(quarantine_row(offset=i), decision(key(i), f"d{i}", kind))
        for i, kind in enumerate((RELEASE, CONFIRM_FAULT, NOTE))
    }
    undecided = queue_row(quarantine_row(offset=9), None)
    open_filter, decided = QueueFilter(status="open"), QueueFilter(status="decided")
    assert [k for k, r in rows.items() if open_filter.matches(r)] == [NOTE]
    assert [k for k, r in rows.items() if decided.matches(r)] == [RELEASE, CONFIRM_FAULT]
    assert open_filter.matches(undecided) and not decided.matches(undecided)
    assert all(QueueFilter(status="all").matches(r) for r in [*rows.values(), undecided])


# -- rows --------------------------------------------------------------------------------------


def test_row_shows_the_reading_as_sent_its_rules_and_lineage():
    record = quarantine_row(offset=7, value=356.0, unit="degF",
                            rules=[("a", "too hot"), ("b", "too fast")])  # fmt: skip
    row = queue_row(record, None)
    assert (row.value, row.unit, row.quality) == (356.0, "degF", "Good")
    assert row.rule_names == ("a", "b") and row.failed_rules[1].reason == "too fast"
    assert (row.lineage.kafka_offset, row.lineage.edge_instance, row.lineage.edge_seq) == (
        7,
        "edge-a-1",
        1007,
    )
    assert row.line == "site1/line1"
    assert row.path == "/quarantine/reading/plantlake.telemetry/0/7"


def test_rows_are_newest_first_and_take_missing_values():
    records = [quarantine_row(offset=1, event_time_ms=T0_MS - 1000, value=None, failed_rules=None),
               quarantine_row(offset=2)]  # fmt: skip
    rows = queue_rows(records, {})
    assert [r.key.kafka_offset for r in rows] == [2, 1]
    assert rows[1].value is None and rows[1].failed_rules == ()


def test_the_apps_decision_shows_at_once_pending_until_silver_applies_it():
    record = quarantine_row(offset=1)
    pending = review_of(record, decision(key(1), "d1"))
    assert (pending.status, pending.applied, pending.label) == (
        "released", False, "released · pending in silver"
    )  # fmt: skip
    applied = review_of({**record, "review_decision_id": "d1", "review_status": "released"},
                        decision(key(1), "d1"))  # fmt: skip
    assert applied.applied and applied.label == "released · applied"
    # Silver applied an older decision; the newer one in the app's table is still pending.
    newer = review_of({**record, "review_decision_id": "d0", "review_status": "noted"},
                      decision(key(1), "d1", CONFIRM_FAULT))  # fmt: skip
    assert (newer.status, newer.applied) == ("confirmed_fault", False)
    assert review_of(record, None).label == "open"


def test_a_unit_failed_reading_cannot_be_released_and_a_release_is_final():
    unit_failed = queue_row(quarantine_row(offset=1, unit="furlong",
                                           rules=[("unit", "unknown unit")]), None)  # fmt: skip
    assert "convert its unit 'furlong'" in (refusal(unit_failed, RELEASE) or "")
    assert refusal(unit_failed, CONFIRM_FAULT) is None and refusal(unit_failed, NOTE) is None
    released = queue_row(quarantine_row(offset=2), decision(key(2), "d2"))
    assert all(refusal(released, d) for d in (RELEASE, CONFIRM_FAULT, NOTE))
    assert refusal(queue_row(quarantine_row(offset=3), None), "delete")


def test_pages_hold_at_most_a_page_of_rows():
    rows = queue_rows([quarantine_row(offset=i) for i in range(5)], {})
    assert [len(page_of(rows, n, size=2).rows) for n in (1, 2, 3)] == [2, 2, 1]
    last = page_of(rows, 99, size=2)
    assert (last.number, last.pages, last.total) == (3, 3, 5)
    assert page_of([], 1).pages == 1


# -- bulk --------------------------------------------------------------------------------------


def test_bulk_digest_changes_when_the_set_or_a_decision_changes():
    a, b = (queue_row(quarantine_row(offset=i), None) for i in (1, 2))
    decided_b = queue_row(quarantine_row(offset=2), decision(key(2), "d2", NOTE))
    assert bulk_digest([a, b]) == bulk_digest([b, a])
    assert bulk_digest([a, b]) != bulk_digest([a])
    assert bulk_digest([a, b]) != bulk_digest([a, decided_b])


def test_bulk_decision_ids_repeat_for_the_same_form_and_differ_per_reading():
    bulk_id = "0123456789abcdef0123456789abcdef"
    assert is_bulk_id(bulk_id) and not is_bulk_id("x' OR 1=1 --")
    first = bulk_decision_id(bulk_id, key(1))
    assert first == bulk_decision_id(bulk_id, key(1)) and first.startswith(bulk_id + "-")
    assert first != bulk_decision_id(bulk_id, key(2))
    assert first != bulk_decision_id("f" * 32, key(1))


def test_bulk_targets_skip_released_readings_and_name_the_refusing_ones():
    rows = [
        queue_row(quarantine_row(offset=1), None),
        queue_row(quarantine_row(offset=2, rules=[("unit", "unknown unit")]), None),
        queue_row(quarantine_row(offset=3), decision(key(3), "d3")),
    ]
    targets, refused = bulk_targets(rows, RELEASE)
    assert [r.key.kafka_offset for r in targets] == [1]
    assert [r.key.kafka_offset for r in refused] == [2]
    targets, refused = bulk_targets(rows, CONFIRM_FAULT)
    assert [r.key.kafka_offset for r in targets] == [1, 2] and refused == []


# -- units and limits --------------------------------------------------------------------------


UNITS = unit_table(UNIT_ROWS)


def test_values_convert_to_the_canonical_unit_when_the_unit_is_known():
    value, unit = to_canonical(212.0, "degF", UNITS) or (None, None)
    assert unit == "degC" and value == pytest.approx(100.0)
    assert to_canonical(1.0, "furlong", UNITS) is None
    assert to_canonical(None, "degC", UNITS) is None


def test_limits_are_the_failed_range_rules_bounds_in_the_plot_unit():
    rules = load_rules()
    failed = ["bearing_temperature_rotating", "temperature_plausible",
              "temperature_rate_of_change", "sensor_stuck"]  # fmt: skip
    limits = {
        (lim.rule, lim.bound): lim.value
        for lim in rule_limits(rules, failed, unit="degC", units=UNITS)
    }
    # Rate of change and stuck have no value bound; only the range rules draw a line.
    assert limits == {
        ("bearing_temperature_rotating", "max"): 150.0,
        ("temperature_plausible", "min"): -40.0,
        ("temperature_plausible", "max"): 250.0,
    }
    assert rule_limits(rules, ["pressure_plausible"], unit="degC", units=UNITS) == []
    assert rule_limits(rules, [], unit="degC", units=UNITS) == []


def test_limits_in_another_unit_are_converted_or_left_out():
    rules = [r for r in load_rules() if r.name == "pressure_plausible"]
    # A rule stated in psi (a process engineer's file) on a plot in bar.
    from dataclasses import replace

    in_psi = [replace(rules[0], params=replace(rules[0].params, unit="psi", min=None, max=14.5038))]
    (limit,) = rule_limits(in_psi, ["pressure_plausible"], unit="bar", units=UNITS)
    assert limit.value == pytest.approx(1.0, rel=1e-4) and limit.unit == "bar"
    assert rule_limits(in_psi, ["pressure_plausible"], unit="bar", units={}) == []
