"""The twin as a fold: newest value wins whatever the arrival order, liveness, idempotent replay."""

import itertools
import random

from plantlake.pipelines.transforms.twin_fold import Twin, TwinRow

T0 = 1_767_225_600_000
_offsets = itertools.count()


def row(asset, sensor, t_ms, value, *, node="n1", quantity="temperature", received_ms=None):
    return TwinRow(
        asset=asset, sensor=sensor, asset_class="pump", quantity=quantity, value=value,
        unit="degC", quality="Good", event_time_ms=t_ms,
        receive_time_ms=received_ms if received_ms is not None else t_ms + 50,
        source_protocol="opcua", source_node=node, sequence=None,
        kafka_topic="plantlake.telemetry", kafka_partition=0, kafka_offset=next(_offsets),
    )  # fmt: skip


def test_the_newest_value_wins_and_a_late_older_one_changes_nothing():
    twin = Twin()
    assert twin.offer(row("a", "temp", T0 + 2000, 20.0, received_ms=T0 + 2100))
    assert twin.offer(row("a", "temp", T0 + 2000, 21.0, received_ms=T0 + 2200))  # later receipt
    assert not twin.offer(row("a", "temp", T0 + 1000, 15.0))  # arrives late, older
    assert twin.rows["a", "temp"].value == 21.0


def test_any_arrival_order_and_any_replay_give_the_same_twin():
    rng = random.Random(3)
    readings = [
        row(f"a{i % 5}", "temp", T0 + rng.randrange(0, 10**6), float(i)) for i in range(200)
    ]
    expected = None
    for _ in range(5):
        shuffled = readings + rng.sample(readings, 50)  # some delivered twice
        rng.shuffle(shuffled)
        twin = Twin()
        for r in shuffled:
            twin.offer(TwinRow(**{f: getattr(r, f) for f in r.__slots__}))
        values = {k: (v.value, v.event_time_ms) for k, v in twin.rows.items()}
        assert expected is None or values == expected
        expected = values


def _event(kind, node, asset, device, t):
    return {"kind": kind, "source_node": node, "asset": asset, "device": device,
            "event_time_ms": t}  # fmt: skip


def test_liveness_alive_stale_dead_and_alive_again():
    now = T0 + 3_600_000
    twin = Twin()
    for r in [
        row("site/l1/fresh", "temp", now - 10_000, 1.0),
        row("site/l1/silent", "temp", now - 200_000, 1.0),  # temperature SLO: 180 s
        row("site/l1/valve", "state", now - 200_000, 1.0, quantity="state"),  # SLO 900 s
        # Sparkplug: the NDEATH names the gateway asset, no device; every device dies with it.
        row("sp/l1/press1", "temp", now - 30_000, 1.0, node="sp/node1"),
        # Modbus: the endpoint's connection loss has no asset; readings come via endpoint/unit.
        row("mb/l1/pump3", "temp", now - 30_000, 1.0, node="10.0.0.5:502/3"),
        # A device death kills its own asset, not its sibling on the same node.
        row("sp/l1/press2", "temp", now - 30_000, 1.0, node="sp/node2"),
        row("sp/l1/press3", "temp", now - 30_000, 1.0, node="sp/node2"),
        # A value newer than the death, or a birth after it, brings the sensor back.
        row("sp/l1/press4", "temp", now - 10_000, 1.0, node="sp/node3"),
        row("sp/l1/press5", "temp", now - 30_000, 1.0, node="sp/node4"),
        # The edge reported it stale after its last value.
        row("ua/l1/motor1", "temp", now - 10_000, 1.0, node="opc.tcp://ua:4840"),
    ]:
        twin.offer(r)
    for e in [
        _event("death", "sp/node1", "sp/l1/node1", None, now - 20_000),
        _event("death", "10.0.0.5:502", None, None, now - 20_000),
        _event("rebirth_requested", "sp/node2", None, None, now - 1_000),
        _event("death", "sp/node2", "sp/l1/press2", "press2", now - 20_000),
        _event("death", "sp/node3", "sp/l1/press4", "press4", now - 20_000),
        _event("death", "sp/node4", None, None, now - 20_000),
        _event("birth", "sp/node4", None, None, now - 15_000),
        _event("stale", "opc.tcp://ua:4840", "ua/l1/motor1", None, now - 5_000),
        _event("death", "sp/node1", None, None, now + 60_000),  # not yet happened at `now`
    ]:
        twin.lifecycle.add(e, now_ms=now)
    twin.refresh(now)
    got = {asset: r for (asset, _), r in twin.rows.items()}
    assert {a: r.status for a, r in got.items()} == {
        "site/l1/fresh": "alive",
        "site/l1/silent": "stale",
        "site/l1/valve": "alive",
        "sp/l1/press1": "dead",
        "mb/l1/pump3": "dead",
        "sp/l1/press2": "dead",
        "sp/l1/press3": "alive",
        "sp/l1/press4": "alive",
        "sp/l1/press5": "alive",
        "ua/l1/motor1": "stale",
    }
    assert got["site/l1/silent"].status_since_ms == now - 200_000 + 180_000
    assert "180 s freshness SLO" in got["site/l1/silent"].status_reason
    assert got["sp/l1/press1"].status_since_ms == now - 20_000
    assert got["sp/l1/press1"].status_reason.startswith("edge node sp/node1")
    assert got["sp/l1/press2"].status_reason.startswith("device sp/node2")
    assert "reported it stale" in got["ua/l1/motor1"].status_reason
    # The future death applies once the clock reaches it.
    twin.refresh(now + 61_000)
    assert twin.rows["sp/l1/press1", "temp"].status_since_ms == now - 20_000  # still dead
    assert twin.rows["site/l1/fresh", "temp"].status == "alive"
    twin.refresh(now + 171_000)  # 181 s after its last value
    assert twin.rows["site/l1/fresh", "temp"].status == "stale"


def test_status_since_stays_while_the_status_does_not_change():
    twin = Twin()
    twin.offer(row("a", "temp", T0, 1.0))
    twin.refresh(T0 + 1000)
    assert (twin.rows["a", "temp"].status, twin.rows["a", "temp"].status_since_ms) == ("alive", T0)
    twin.offer(row("a", "temp", T0 + 5000, 2.0))
    changed = twin.refresh(T0 + 6000)
    assert changed == set()  # same status and reason
    assert twin.rows["a", "temp"].status_since_ms == T0
    assert twin.rows["a", "temp"].status_as_of_ms == T0 + 6000
    changed = twin.refresh(T0 + 5000 + 181_000)
    assert changed == {("a", "temp")}
    assert twin.rows["a", "temp"].status_since_ms == T0 + 5000 + 180_000
