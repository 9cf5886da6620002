"""The hot path's rule evaluator (plain Python, one reading at a time) gives the same verdicts as
silver's (Spark, over a batch) on generated readings: registry, units and every rule kind."""

import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantlake.pipelines.transforms.asset_registry import REGISTRY_SCHEMA, join_registry
from plantlake.pipelines.transforms.expectations import load_rules
from plantlake.pipelines.transforms.reading_checks import (
    UNIT_RULE,
    ReadingChecker,
    Reference,
    RegistryRow,
    SensorChecks,
    UnitRow,
    prepare,
)
from plantlake.pipelines.transforms.rule_evaluation import apply_rules, carried_state
from plantlake.pipelines.transforms.unit_conversion import UNITS_SCHEMA, normalize_units, unit_rows

pytestmark = pytest.mark.spark

T0 = 1_767_225_600_000
NOW = T0 + 6 * 3_600_000
MIN = 60_000
RULES = load_rules()
# (asset, sensor, class, quantity); pump-09 is not in the registry, and pump-02's vibration
# sensor moved from the motor to the pump at T0 + 1 h.
SENSORS = [
    ("s/l/pump-01", "bearing_temperature", "pump", "temperature"),
    ("s/l/pump-01", "current", "pump", "current"),
    ("s/l/pump-01", "running", "pump", "state"),
    ("s/l/press-01", "pressure", "press", "pressure"),
    ("s/l/pump-02", "vibration.rms", "pump", "vibration"),
    ("s/l/pump-02", "vibration.crest", "pump", "ratio"),
    ("s/l/pump-09", "bearing_temperature", None, None),
]
MOVED = T0 + 3_600_000
UNITS = ["degC", "degF", "K", "A", "mA", "bar", "psi", "mm/s", "", None, "furlong", "in/s"]
READINGS = (
    "id long, asset string, sensor string, value double, unit string, quality string, "
    "event_time_ms long, receive_time_ms long, event_time timestamp"
)


def _registry_rows():
    rows = []
    since = dt.datetime.fromtimestamp((T0 - 86_400_000) / 1000, dt.UTC)
    moved = dt.datetime.fromtimestamp(MOVED / 1000, dt.UTC)
    for asset, sensor, klass, quantity in SENSORS:
        if klass is None:
            continue
        row = {"asset": asset, "sensor": sensor, "asset_class": klass, "quantity": quantity,
               "site": "s", "line": "l", "valid_from": since, "valid_to": None}  # fmt: skip
        if sensor.startswith("vibration"):
            rows += [
                {**row, "asset_class": "motor", "valid_to": moved},
                {**row, "valid_from": moved},
            ]
        else:
            rows.append(row)
    return rows


def _reference() -> Reference:
    units = {r["unit"]: UnitRow(r["quantity"], r["canonical_unit"], r["scale"], r["offset"])
             for r in unit_rows()}  # fmt: skip
    registry = {}
    for r in _registry_rows():
        to = r["valid_to"]
        registry.setdefault((r["asset"], r["sensor"]), []).append(RegistryRow(
            r["asset_class"], r["quantity"], int(r["valid_from"].timestamp() * 1000),
            None if to is None else int(to.timestamp() * 1000),
        ))  # fmt: skip
    return Reference(units=units, registry=registry)


# A value: ordinary, implausible, missing, or a repeat of the sensor's previous one (stuck).
value = st.one_of(
    st.floats(-60, 300, allow_nan=False).map(lambda v: round(v, 1)),
    st.sampled_from([None, math.nan, 600.0, -500.0, 0.0, 42.0]),
    st.just("repeat"),
)
reading = st.tuples(
    st.integers(0, len(SENSORS) - 1),
    value,
    st.sampled_from(UNITS + ["native"] * 8),
    st.sampled_from(["Good"] * 6 + ["Uncertain", "Bad"]),
    st.integers(1_000, 4 * MIN),  # gap after the sensor's previous reading
    st.sampled_from([50, 50, 50, 9_000, 90_000_000, -400_000]),  # receive - event
)
NATIVE = {"temperature": "degC", "current": "A", "state": "", "pressure": "bar",
          "vibration": "mm/s", "ratio": None, None: "degC"}  # fmt: skip


def _records(draws):
    clock = {i: T0 - 40 * MIN for i in range(len(SENSORS))}
    last = {}
    records = []
    for n, (i, v, unit, quality, gap, delay) in enumerate(draws):
        asset, sensor, _klass, quantity = SENSORS[i]
        clock[i] += gap
        if v == "repeat":
            v = last.get(i, 1.0)
        last[i] = v
        t = clock[i]
        records.append({
            "id": n, "asset": asset, "sensor": sensor, "value": v,
            "unit": NATIVE[quantity] if unit == "native" else unit, "quality": quality,
            "event_time_ms": t, "receive_time_ms": t + delay,
        })  # fmt: skip
    return records


def _spark_verdicts(spark, records, *, batches: int = 1):
    """Silver's verdicts, the records split into `batches` micro-batches in arrival order, the
    sequence rules' state carried from one to the next as silver carries it: per sensor, so a
    sensor absent from a batch keeps what it carried (silver MERGEs silver.rule_state)."""
    verdicts, carried = {}, None
    size = -(-len(records) // batches)
    for start in range(0, len(records), size):
        found, state = _spark_batch(spark, records[start : start + size], carried)
        verdicts |= found
        carried = state if carried is None else _carry_forward(carried, state)
    return verdicts


def _carry_forward(carried, state):
    """The carried state per sensor after a batch: the batch's where it had the sensor, else the
    state carried into it."""
    kept = carried.join(state.select("asset", "sensor"), ["asset", "sensor"], "left_anti")
    return kept.unionByName(state).localCheckpoint()


def _spark_batch(spark, records, carried):
    rows = [(r["id"], r["asset"], r["sensor"], r["value"], r["unit"], r["quality"],
             r["event_time_ms"], r["receive_time_ms"],
             dt.datetime.fromtimestamp(r["event_time_ms"] / 1000, dt.UTC)) for r in records]  # fmt: skip
    frame = spark.createDataFrame(rows, READINGS)
    registry = spark.createDataFrame(_registry_rows(), REGISTRY_SCHEMA)
    units = spark.createDataFrame(unit_rows(), UNITS_SCHEMA)
    prepared = normalize_units(join_registry(frame, registry=registry), units=units).persist()
    verdicts = {r.id: {UNIT_RULE} for r in prepared.where("unit_error IS NOT NULL").collect()}
    checked = apply_rules(prepared.where("unit_error IS NULL"), RULES, carried=carried, now_ms=NOW)
    checked = checked.persist()
    for r in checked.select("id", "dq_failures").collect():
        verdicts[r.id] = {f.rule for f in r.dq_failures}
    state = carried_state(checked).localCheckpoint()
    checked.unpersist()
    prepared.unpersist()
    return verdicts, state


def _python_verdicts(records):
    reference, checker = _reference(), ReadingChecker(RULES)
    checks, verdicts = {}, {}
    for r in sorted(records, key=lambda r: r["event_time_ms"]):
        state = checks.setdefault((r["asset"], r["sensor"]), SensorChecks())
        verdicts[r["id"]] = set(checker.failed_rules(prepare(r, reference), state, now_ms=NOW))
    return verdicts


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(reading, min_size=40, max_size=160), st.integers(1, 3))
def test_both_evaluators_give_the_same_verdicts(spark, draws, batches):
    """Whatever the readings, and however silver's micro-batches cut them."""
    records = _records(draws)
    assert _python_verdicts(records) == _spark_verdicts(spark, records, batches=batches)


def test_a_sensor_absent_from_a_batch_keeps_its_carried_state(spark):
    """Found by the property above: the unregistered pump's temperature jumps 60 degC in 2 s
    across a micro-batch that has none of its readings. Silver still compares the jump with the
    reading two batches back, as the hot path does."""
    draws = [(6, 60.0, "native", "Good", 2000, 50), (3, 5.0, "native", "Good", 1000, 50),
             (6, 120.0, "native", "Good", 2000, 50)]  # fmt: skip
    records = _records(draws)
    verdicts = _python_verdicts(records)
    assert verdicts[2] == {"known_asset", "temperature_rate_of_change"}
    assert _spark_verdicts(spark, records, batches=3) == verdicts


def test_the_generated_readings_exercise_every_rule(spark):
    """A fixed draw that makes a rule of every kind fail, so the equality above means something."""
    draws = [(1, 12.5, "native", "Good", 3 * MIN, 50)] * 8  # current stuck for 21 min
    draws += [(0, 60.0, "native", "Good", 2000, 50), (0, 120.0, "native", "Good", 2000, 50),
              (0, 600.0, "native", "Good", 2000, 50), (0, None, "native", "Bad", 2000, 50),
              (0, 70.0, "furlong", "Good", 2000, 50), (6, 60.0, "native", "Good", 2000, 50),
              (0, 70.0, "native", "Uncertain", 2000, 9_000),
              (0, 70.0, "native", "Good", 2000, 90_000_000)]  # fmt: skip
    draws += [(3, 5.0, "native", "Good", 1000, 50)] * 3
    draws.append((3, 5.0, "native", "Good", 10 * 3_600_000, -400_000))  # in the future
    records = _records(draws)
    verdicts = _python_verdicts(records)
    assert verdicts == _spark_verdicts(spark, records)
    failed = set().union(*verdicts.values())
    kinds = {r.name: r.kind for r in RULES} | {UNIT_RULE: UNIT_RULE}
    assert {kinds[name] for name in failed} == {r.kind for r in RULES} | {UNIT_RULE}
