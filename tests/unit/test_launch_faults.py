"""The simulated plant's launch faults: a schedule per plant, the values the sensors then report,
and the Sparkplug gateway's backlog and misconfigured unit (no broker: a recording client)."""

import math
from collections import defaultdict
from importlib.resources import files
from pathlib import Path

import yaml

from plantlake.core.config import EdgeNode, MqttSettings
from plantlake.core.records import Quality
from plantlake.core.units import ALIASES, quantity_of, registry
from plantlake.ingest.edge_filter import EdgeFilter
from plantlake.ingest.filters import load_filter_config
from plantlake.ingest.sparkplug.host import HostOptions, PrimaryHost
from plantlake.ingest.sparkplug.topics import state_payload
from plantlake.simulator.launch_faults import (
    BACKLOG_MS,
    LaunchFaultKind,
    launch_faults,
    schedule,
)
from plantlake.simulator.plant import build_plant, value_at
from plantlake.simulator.sparkplug_node import SimulatedEdgeNode

PLANT = build_plant(7)
LAUNCH = PLANT.start_ms
MINUTE = 60_000


def _fault(kind):
    fault = launch_faults(PLANT).of_kind(kind)
    assert fault is not None, f"the plant has no {kind} launch fault"
    return fault


def _sensor(fault):
    asset = PLANT.asset(fault.asset)
    return asset, asset.sensor(fault.sensor)


def _plausible_max_degc() -> float:
    text = (files("plantlake.expectations") / "ranges.yaml").read_text()
    (rule,) = [r for r in yaml.safe_load(text)["rules"] if r["name"] == "temperature_plausible"]
    assert rule["unit"] == "degC"
    return float(rule["max"])


def test_the_schedule_is_deterministic_per_plant_and_cached():
    assert schedule(build_plant(7)) == schedule(PLANT)
    assert launch_faults(PLANT) is launch_faults(PLANT)
    later = build_plant(7, start_ms=LAUNCH + 123_456_789)
    shifted = launch_faults(later)
    # The same sensors at the same offsets from the launch, whatever the start.
    assert [
        (f.kind, f.asset, f.sensor, f.start_ms - LAUNCH) for f in launch_faults(PLANT).faults
    ] == [(f.kind, f.asset, f.sensor, f.start_ms - later.start_ms) for f in shifted.faults]
    assert {f.kind for f in shifted.faults} == set(LaunchFaultKind)


def test_stuck_and_wrong_unit_are_on_sparkplug_assets_and_the_values_on_another_protocol():
    faults = launch_faults(PLANT)
    for kind in (LaunchFaultKind.STUCK, LaunchFaultKind.WRONG_UNIT):
        assert PLANT.asset(_fault(kind).asset).protocol == "sparkplug"
    assert PLANT.asset(_fault(LaunchFaultKind.IMPOSSIBLE).asset).protocol in ("opcua", "modbus")
    # None of the plant's own faulty assets: the launch faults stay easy to tell apart.
    for fault in faults.faults:
        asset = PLANT.asset(fault.asset)
        assert asset.stuck_from_ms is None and asset.dies_at_ms is None
    assert all(f.end_ms <= LAUNCH + 10 * MINUTE for f in faults.faults)


def test_within_the_first_minute_an_impossible_reading_and_nans_with_bad_and_good_quality():
    limit = _plausible_max_degc()
    impossible, nan_bad, nan_good = [], [], []
    for asset in PLANT.assets:
        for sensor in asset.sensors:
            if sensor.rate_hz:
                continue
            for t in range(LAUNCH, LAUNCH + MINUTE, 1000):
                value, quality = value_at(PLANT, asset, sensor, t)
                if math.isnan(value):
                    (nan_bad if quality is Quality.BAD else nan_good).append((asset.path, t))
                elif quantity_of(sensor.unit) == "temperature":
                    unit = ALIASES.get(sensor.unit, sensor.unit)
                    degc = registry().Quantity(value, unit).to("degree_Celsius").magnitude
                    if degc > limit:
                        impossible.append((asset.path, t))
    assert impossible and nan_bad and nan_good
    assert {a for a, _ in impossible} == {_fault(LaunchFaultKind.IMPOSSIBLE).asset}
    fault = _fault(LaunchFaultKind.IMPOSSIBLE)
    assert all(fault.start_ms <= t < fault.end_ms for _, t in impossible)


def test_the_stuck_sensor_repeats_one_value_from_before_the_launch_until_its_fix():
    fault = _fault(LaunchFaultKind.STUCK)
    asset, sensor = _sensor(fault)
    assert fault.start_ms == LAUNCH - BACKLOG_MS and fault.end_ms == LAUNCH + 10 * MINUTE
    stuck = {value_at(PLANT, asset, sensor, t) for t in range(fault.start_ms, fault.end_ms, 10_000)}
    ((value, quality),) = stuck
    # A value the stuck rule may judge: finite, Good, not one a stopped machine holds (0).
    assert math.isfinite(value) and value != 0 and quality is Quality.GOOD
    after = [value_at(PLANT, asset, sensor, fault.end_ms + k * 10_000)[0] for k in range(30)]
    assert len(set(after)) > 10  # fixed: it moves again
    before = [value_at(PLANT, asset, sensor, fault.start_ms - k * 10_000)[0] for k in range(1, 30)]
    assert len(set(before)) > 10


def test_whatever_the_launch_day_the_stuck_value_is_one_the_stuck_rule_judges():
    for day in range(0, 120, 7):
        plant = build_plant(7, start_ms=LAUNCH + day * 86_400_000 + 13 * 3_600_000 + 4321)
        fault = launch_faults(plant).of_kind(LaunchFaultKind.STUCK)
        assert fault is not None
        asset = plant.asset(fault.asset)
        value, quality = value_at(plant, asset, asset.sensor(fault.sensor), fault.start_ms)
        assert math.isfinite(value) and value != 0 and quality is Quality.GOOD, day


class _Clock:
    speed = 1.0

    def __init__(self, t: int):
        self.t = t

    def now_ms(self) -> int:
        return self.t


class _Client:
    """Stands in for paho: connected, and records what is published."""

    def __init__(self):
        self.sent: list[tuple[str, bytes]] = []

    def is_connected(self) -> bool:
        return True

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, payload))

    def subscribe(self, topics):
        pass


class _Accepted:
    is_failure = False


def _node(line: str, clock: _Clock, faults=None) -> tuple[SimulatedEdgeNode, _Client]:
    node = SimulatedEdgeNode(MqttSettings(), PLANT, clock,  # type: ignore[arg-type]
                             EdgeNode(group_id="plant1", edge_node_id=f"{line}-gateway"),
                             launch_faults=faults)  # fmt: skip
    client = _Client()
    node._client = client  # type: ignore[assignment]
    node._on_connect(client, None, None, _Accepted(), None)  # the CONNACK: a session's bdSeq
    return node, client


def _host_online(node: SimulatedEdgeNode, t: int) -> None:
    node._command("state", state_payload(online=True, timestamp_ms=t))


def _readings(host: PrimaryHost, sent, now: int):
    return [r for topic, payload in sent for r in host.handle(topic, payload, now).readings]


def test_the_gateway_replays_a_backlog_whose_stuck_readings_span_ten_minutes_after_filtering():
    fault = _fault(LaunchFaultKind.STUCK)
    line = fault.asset.split("/")[1]
    clock = _Clock(LAUNCH + 3000)
    node, client = _node(line, clock, launch_faults(PLANT))
    assert node.buffered > 0
    _host_online(node, 1)
    host = PrimaryHost(HostOptions(reorder_timeout_ms=0))
    readings = _readings(host, client.sent, clock.t)
    replayed = [r for r in readings if r.quality is Quality.UNCERTAIN]
    assert replayed and {r.asset for r in replayed} == {a.path for a in node.assets}
    assert min(r.event_time_ms for r in replayed) <= LAUNCH - BACKLOG_MS + 10_000
    # What the edge's deadband lets through of the stuck sensor: heartbeats, still identical.
    edge = EdgeFilter(load_filter_config())
    kept = [
        r for r in readings
        if (r.asset, r.sensor) == (fault.asset, fault.sensor) and edge.reading(r) is not None
    ]  # fmt: skip
    times = sorted(r.event_time_ms for r in kept)
    assert len({r.value for r in kept}) == 1
    assert len(kept) >= 5 and times[-1] - times[0] >= 10 * MINUTE


def test_without_launch_faults_the_node_has_no_backlog_and_its_own_units():
    node, client = _node("line2", _Clock(LAUNCH + 3000))
    assert node.buffered == 0
    _host_online(node, 1)
    host = PrimaryHost()
    units = {(r.asset, r.sensor): r.unit for r in _readings(host, client.sent, LAUNCH + 3000)}
    assert units == {(a.path, s.name): s.unit or None for a in node.assets for s in a.sensors}


def test_a_misconfigured_unit_is_born_wrong_then_corrected_by_a_rebirth():
    fault = _fault(LaunchFaultKind.WRONG_UNIT)
    asset, sensor = _sensor(fault)
    assert quantity_of(fault.unit) != sensor.quantity  # a unit silver cannot convert
    line = fault.asset.split("/")[1]
    clock = _Clock(LAUNCH + 3000)
    node, client = _node(line, clock, launch_faults(PLANT))
    _host_online(node, 1)
    host = PrimaryHost(HostOptions(reorder_timeout_ms=0))
    units = defaultdict(set)
    for r in _readings(host, client.sent, clock.t):
        units[(r.asset, r.sensor)].add(r.unit)
    assert units[(fault.asset, fault.sensor)] == {fault.unit}  # the births and the replay
    assert units[(fault.asset, "running")] == {None}

    mark, births = len(client.sent), node.births
    clock.t = fault.end_ms - 1000
    node.tick()  # before the fix: data only, still read in the wrong unit
    assert node.births == births
    assert {r.unit for r in _readings(host, client.sent[mark:], clock.t)
            if r.sensor == fault.sensor and r.asset == fault.asset} == {fault.unit}  # fmt: skip

    mark = len(client.sent)
    clock.t = fault.end_ms
    node.tick()  # the tag was corrected: a rebirth with the right unit, then data
    assert node.births == births + 1
    topics = [topic.split("/")[2] for topic, _ in client.sent[mark:]]
    assert topics[0] == "NBIRTH" and "DBIRTH" in topics
    after = [r for r in _readings(host, client.sent[mark:], clock.t)
             if (r.asset, r.sensor) == (fault.asset, fault.sensor)]  # fmt: skip
    assert after and {r.unit for r in after} == {sensor.unit}

    mark = len(client.sent)
    clock.t += 1000
    node.tick()  # no second rebirth
    assert node.births == births + 1
    assert {t.split("/")[2] for t, _ in client.sent[mark:]} == {"DDATA"}


def test_the_demo_names_each_launch_fault_no_rule_caught():
    from plantlake.app.demo_rules import Judged, missed_faults

    faults = launch_faults(PLANT)
    kinds = {"temperature_plausible": "range", "sensor_stuck": "stuck", "quality_good": "quality",
             "unit": "unit"}  # fmt: skip
    hot, stuck, wrong = (_fault(k) for k in (LaunchFaultKind.IMPOSSIBLE, LaunchFaultKind.STUCK,
                                             LaunchFaultKind.WRONG_UNIT))  # fmt: skip
    judged = [
        Judged(hot.asset, hot.sensor, 1173.15, "Good", ("temperature_plausible",)),
        Judged(hot.asset, hot.sensor, None, "Bad", ("quality_good",)),
        Judged(hot.asset, hot.sensor, math.nan, "Good", ("temperature_plausible",)),
        Judged(stuck.asset, stuck.sensor, 6.1, "Uncertain", ("sensor_stuck", "quality_good")),
        Judged(wrong.asset, wrong.sensor, 55.0, "Good", ("unit",)),
    ]
    assert missed_faults(faults, judged, kinds) == []
    # A NaN reported Good that only the quality rule flagged, and a stuck rule on another sensor.
    partial = [judged[0], judged[1], judged[4],
               Judged(hot.asset, hot.sensor, None, "Good", ("quality_good",)),
               Judged(wrong.asset, wrong.sensor, 55.0, "Good", ("sensor_stuck",))]  # fmt: skip
    assert {f.kind for f in missed_faults(faults, partial, kinds)} == {
        LaunchFaultKind.NAN_GOOD,
        LaunchFaultKind.STUCK,
    }


def test_the_readme_names_the_launch_faults_of_the_default_plant():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("**launch faults**") :]
    for fault in launch_faults(build_plant(7)).faults:
        assert f"`{fault.asset}`" in section and f"`{fault.sensor}`" in section, fault
