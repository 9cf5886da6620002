"""Sparkplug B end to end on the real Mosquitto: simulated edge node -> broker -> primary host -> sink."""

import contextlib
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from rich.console import Console

from plantlake.app.local_secrets import ensure_local_secrets
from plantlake.core.config import load_settings
from plantlake.core.records import LifecycleKind, Quality
from plantlake.ingest.edge import MemorySink
from plantlake.ingest.sparkplug.host import HostOptions
from plantlake.ingest.sparkplug.host_client import HostClient
from plantlake.simulator.clock import SimClock
from plantlake.simulator.plant import build_plant
from plantlake.simulator.sparkplug_node import SimulatedEdgeNode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings():
    """Only Mosquitto is needed here, not the whole stack."""
    from plantlake.services import stack

    loaded = ensure_local_secrets(load_settings())
    (health,) = stack.up(loaded, ("mosquitto",), Console(stderr=True))
    if not health.up:
        pytest.fail(f"mosquitto down after `plantlake up mosquitto`: {health.detail}")
    return loaded


def _wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def plant():
    return build_plant(7)


def _start_host(settings, sink, stop):
    host = HostClient(settings.mqtt, sink, options=HostOptions(reorder_timeout_ms=200),
                      client_id=f"{settings.mqtt.host_app_id}-test-{uuid.uuid4().hex[:6]}")  # fmt: skip
    thread = threading.Thread(target=host.run, args=(stop,), daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def running(settings, plant):
    """A primary host and the line-1 edge node, both live for the whole module."""
    sink, host_stop, node_stop = MemorySink(), threading.Event(), threading.Event()
    node = SimulatedEdgeNode(settings.mqtt, plant, SimClock(plant.start_ms),
                             settings.mqtt.edge_nodes[0], publish_interval_s=0.2,
                             samples_per_publish=2, client_id=f"sim-test-{uuid.uuid4().hex[:6]}")  # fmt: skip
    threads = [_start_host(settings, sink, host_stop),
               threading.Thread(target=node.run, args=(node_stop,), daemon=True)]  # fmt: skip
    threads[1].start()
    yield sink, host_stop, node
    host_stop.set()
    node_stop.set()
    for thread in threads:
        thread.join(timeout=10)


def _births(sink, since: int, device=None):
    return [e for e in sink.events[since:] if e.kind is LifecycleKind.BIRTH and e.device == device]


def test_node_data_reaches_the_host_with_units_and_asset_paths(running, plant):
    sink, _, node = running
    expected = {(a.path, s.name, s.unit or None) for a in node.assets for s in a.sensors}
    assert expected, "the line-1 gateway serves no sparkplug assets"
    _wait_for(lambda: expected <= {(r.asset, r.sensor, r.unit) for r in sink.all_readings},
              what="a reading of every sensor with its unit")  # fmt: skip
    assert {r.asset for r in sink.all_readings} <= {a.path for a in node.assets}
    born = {e.asset for e in sink.events if e.kind is LifecycleKind.BIRTH and e.device}
    assert born == {a.path for a in node.assets}
    assert all(r.source_node == "plant1/line1-gateway" for r in sink.all_readings)


def test_a_malformed_payload_on_the_nodes_own_topic_is_a_dead_letter(running, settings):
    sink, _, node = running
    _wait_for(lambda: _births(sink, 0), what="the node's birth")
    edge = settings.mqtt.edge_nodes[0]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(edge.edge_node_id,
                           settings.mqtt.edge_passwords[edge.edge_node_id].get_secret_value())  # fmt: skip
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    garbage = b"\xff\xfe" + uuid.uuid4().bytes
    topic = f"spBv1.0/{edge.group_id}/DDATA/{edge.edge_node_id}/{node.assets[0].name}"
    client.publish(topic, garbage, qos=1).wait_for_publish(timeout=10)
    client.loop_stop()
    client.disconnect()
    dead = _wait_for(lambda: [d for d in sink.dead if d.raw == garbage], what="the dead letter")
    assert dead[0].origin == topic and "protobuf" in dead[0].reason


def test_a_seq_gap_makes_the_host_request_a_rebirth_and_the_node_rebirths(running):
    sink, _, node = running
    _wait_for(lambda: _births(sink, 0), what="the node's birth")
    mark, answered = len(sink.events), node.rebirths_answered
    node.skip_seq()
    request = _wait_for(lambda: [e for e in sink.events[mark:]
                                 if e.kind is LifecycleKind.REBIRTH_REQUESTED],
                        what="a rebirth request")  # fmt: skip
    assert "seq gap" in request[0].detail
    _wait_for(lambda: node.rebirths_answered > answered, what="the node to get the NCMD")
    rebirth = _wait_for(lambda: _births(sink, mark), what="a new NBIRTH")
    assert rebirth[0].bd_seq == node.session_bd_seq  # a rebirth keeps the session's bdSeq


def test_an_unclean_death_is_a_death_with_stale_metrics_then_a_new_session(running):
    sink, _, node = running
    _wait_for(lambda: _births(sink, 0), what="the node's birth")
    mark, old_bd_seq = len(sink.events), node.session_bd_seq
    node.die_unclean()
    death = _wait_for(lambda: [e for e in sink.events[mark:] if e.kind is LifecycleKind.DEATH],
                      what="the NDEATH will")  # fmt: skip
    assert death[0].bd_seq == old_bd_seq and death[0].device is None
    stale = {e.asset for e in sink.events[mark:] if e.kind is LifecycleKind.STALE}
    assert stale == {a.path for a in node.assets}
    assert death[0].event_time_ms == death[0].receive_time_ms  # stamped on the host's receipt
    died_at = death[0].receive_time_ms
    reborn = _wait_for(lambda: _births(sink, mark), what="the next session's NBIRTH")
    assert reborn[0].bd_seq == (old_bd_seq + 1) % 256
    # What the node buffered while disconnected is replayed as historical, not dropped.
    _wait_for(lambda: [r for r in sink.all_readings
                       if r.receive_time_ms >= died_at and r.quality is Quality.UNCERTAIN],
              what="historical replays")  # fmt: skip


def test_while_the_host_is_offline_the_node_buffers_and_replays_as_historical(running, settings):
    sink, host_stop, node = running  # runs last: it stops the module's host
    _wait_for(lambda: _births(sink, 0), what="the node's birth")
    births = node.births
    host_stop.set()  # a clean stop publishes STATE offline; the node stops live data
    _wait_for(lambda: not node.born, what="the node to see STATE offline")
    _wait_for(lambda: node.buffered >= 2 * len(node.assets), what="data in the node's buffer")
    fresh, stop = MemorySink(), threading.Event()
    thread = _start_host(settings, fresh, stop)
    try:
        _wait_for(lambda: node.births > births, what="births for the new host")

        # The node replays asset by asset: wait for all of them, not for the first.
        def replayed_assets():
            return {r.asset for r in fresh.all_readings if r.quality is Quality.UNCERTAIN}

        expected = {a.path for a in node.assets}
        _wait_for(lambda: expected <= replayed_assets(), what="every asset's buffered readings")
        assert replayed_assets() == expected
        assert _births(fresh, 0) and not fresh.dead  # births came before the replay
    finally:
        stop.set()
        thread.join(timeout=10)


_HOST_SCRIPT = """
import signal, sys, threading, time
from pathlib import Path
from plantlake.app.local_secrets import ensure_local_secrets
from plantlake.core.config import load_settings
from plantlake.ingest.buffer import Outbox
from plantlake.ingest.buffered_sink import BufferedSink
from plantlake.ingest.sparkplug.host_client import HostClient

buffer, client_id, delay = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])


class SlowSink(BufferedSink):
    def dead_letter(self, item):
        time.sleep(delay)  # a slow disk: messages wait in the host's inbox meanwhile
        super().dead_letter(item)


settings = ensure_local_secrets(load_settings())
sink = SlowSink(Outbox(buffer), topic_prefix="t", edge_filter=None)
host = HostClient(settings.mqtt, sink, client_id=client_id)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())  # a clean stop ends the MQTT session
threading.Thread(target=lambda: (host.online.wait(), print("online", flush=True)), daemon=True).start()
host.run(stop)
"""


@contextlib.contextmanager
def _host_process(buffer, client_id, delay):
    """The host in a process of its own, stopped cleanly on leaving unless it was killed."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOST_SCRIPT, str(buffer), client_id, str(delay)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "online"
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()


def _stored_payloads(buffer, topic):
    """The raw payloads of the dead letters the host stored for `topic` (other nodes publish
    meanwhile)."""
    import base64

    import orjson

    from plantlake.ingest.buffer import Outbox

    records = (orjson.loads(e.value) for e in Outbox(buffer).peek(10**6))
    return [base64.b64decode(r["raw"]) for r in records if r.get("origin") == topic]


def test_a_killed_host_loses_nothing_the_broker_handed_it(settings, tmp_path):
    """Issue 13.6: what reached the host but was not yet stored when it was killed -9 comes again
    after its restart, because the host acknowledges only what it stored."""
    import signal

    buffer, client_id = tmp_path / "host.sqlite", f"host-kill-{uuid.uuid4().hex[:6]}"
    edge = settings.mqtt.edge_nodes[0]
    topic = f"spBv1.0/{edge.group_id}/DDATA/{edge.edge_node_id}/kill-test"
    sent = [b"\xff\xfe" + uuid.uuid4().bytes for _ in range(40)]
    with _host_process(buffer, client_id, delay=0.3) as host:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}"
        )
        client.username_pw_set(edge.edge_node_id,
                               settings.mqtt.edge_passwords[edge.edge_node_id].get_secret_value())  # fmt: skip
        client.connect(settings.mqtt.host, settings.mqtt.port)
        client.loop_start()
        for payload in sent:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
        client.loop_stop()
        client.disconnect()
        _wait_for(lambda: len(_stored_payloads(buffer, topic)) >= 3, what="the host to store a few")
        host.send_signal(signal.SIGKILL)
        host.wait()
    assert len(_stored_payloads(buffer, topic)) < len(sent)  # the rest was in its inbox, unstored

    with _host_process(buffer, client_id, delay=0.0):
        _wait_for(lambda: set(sent) <= set(_stored_payloads(buffer, topic)), timeout=30,
                  what="every payload stored after the restart")  # fmt: skip


def test_a_host_started_before_its_broker_waits_for_it(settings, tmp_path):
    """Issue 13.6: the host retries a broker that is down instead of exiting, and goes online
    once the broker is up."""
    from plantlake.services import process
    from plantlake.services.mosquitto import MosquittoService
    from tests.integration.test_edge_forwarding import _free_port

    mqtt_settings = settings.mqtt.model_copy(update={"port": _free_port()})
    late = settings.model_copy(update={"home": tmp_path / "home", "mqtt": mqtt_settings})
    host = HostClient(late.mqtt, MemorySink(), client_id=f"host-late-{uuid.uuid4().hex[:6]}")
    stop = threading.Event()
    failure = []
    thread = threading.Thread(target=lambda: _run_catching(host, stop, failure), daemon=True)
    thread.start()
    time.sleep(3)
    assert thread.is_alive() and not failure, failure  # still trying, not failed
    broker = MosquittoService(late)
    broker.prepare(lambda _: None)
    pid = process.spawn(broker.launch())
    try:
        process.wait_until("mosquitto", broker.probe, pid=pid, log=broker.log, timeout=30)
        assert host.online.wait(20), "the host did not connect once the broker was up"
    finally:
        stop.set()
        thread.join(10)
        process.stop(broker.pidfile)
    assert not failure, failure


def _run_catching(host, stop, failure):
    try:
        host.run(stop)
    except Exception as exc:  # the old behaviour: SourceError at once
        failure.append(exc)
