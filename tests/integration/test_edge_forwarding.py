"""Store-and-forward against a real broker: a Kafka outage and an edge crash lose nothing.

These tests run their own disposable broker, so stopping it disturbs nobody else.
"""

import base64
import socket
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer

from plantlake.core.config import KafkaSettings
from plantlake.core.records import Quality, Reading
from plantlake.core.topics import INSTANCE_HEADER, SEQ_HEADER, topic
from plantlake.ingest.buffer import Outbox
from plantlake.ingest.buffered_sink import BufferedSink
from plantlake.ingest.forwarder import Forwarder
from plantlake.services import process
from plantlake.services.kafka import KafkaService, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """A throwaway single-node KRaft broker on free ports, startable and stoppable at will."""

    def __init__(self, settings, home):
        kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{_free_port()}",
                              controller_port=_free_port(), topic_prefix="edge")  # fmt: skip
        self.settings = settings.model_copy(update={"home": home, "kafka": kafka})
        self.service = KafkaService(self.settings)

    def start(self) -> None:
        self.service.prepare(lambda _: None)
        pid = process.spawn(self.service.launch())
        process.wait_until("kafka", self.service.probe, pid=pid, log=self.service.log, timeout=90)

    def stop(self) -> None:
        process.stop(self.service.pidfile)


@pytest.fixture
def broker(settings, tmp_path):
    broker = Broker(settings, tmp_path / "home")
    broker.start()
    ensure_topics(broker.settings, lambda _: None)
    yield broker
    broker.stop()


def _readings(asset: str, start: int, count: int) -> list[Reading]:
    return [
        Reading(asset, "temperature", float(i), "degC", Quality.GOOD, i, i, "test", "n", sequence=i)
        for i in range(start, start + count)
    ]


def _consume(kafka: KafkaSettings, name: str, expected: int, timeout: float = 60.0):
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([name])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                if len(messages) >= expected:
                    break
                continue
            if not msg.error():
                messages.append(msg)
    finally:
        consumer.close()
    return messages


def _by_identity(messages):
    """Per asset, the sequence numbers in arrival order, each edge record once (dedup by header)."""
    seen, per_asset = set(), defaultdict(list)
    for msg in messages:
        headers = dict(msg.headers())
        identity = (headers[INSTANCE_HEADER], int(headers[SEQ_HEADER]))
        if identity in seen:
            continue
        seen.add(identity)
        per_asset[msg.key().decode()].append(orjson.loads(msg.value())["sequence"])
    return per_asset


def _in_arrival_order(messages):
    """Per asset, the sequence numbers exactly as they arrived: no dedup, so a record sent twice
    or out of order shows."""
    per_asset = defaultdict(list)
    for msg in messages:
        per_asset[msg.key().decode()].append(orjson.loads(msg.value())["sequence"])
    return per_asset


def _forwarding(forwarder):
    stop = threading.Event()
    thread = threading.Thread(target=forwarder.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def _drain(outbox, forwarder, timeout=120.0):
    deadline = time.monotonic() + timeout
    while outbox.pending()[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert outbox.pending()[0] == 0, forwarder.stats


def test_a_broker_outage_delays_but_loses_and_reorders_nothing(broker, tmp_path):
    """The outage outlasts what a producer would wait by default for a record (librdkafka's
    message timeout, 5 s here before the fix): nothing arrives twice or out of order."""
    outbox = Outbox(tmp_path / "edge.sqlite")
    sink = BufferedSink(outbox, topic_prefix="edge", edge_filter=None)
    forwarder = Forwarder(outbox, broker.settings.kafka, batch=500)
    stop, thread = _forwarding(forwarder)
    assets = ["p/l/a1", "p/l/a2", "p/l/a3"]
    for block in range(30):
        for asset in assets:
            sink.readings(_readings(asset, block * 100, 100))
        if block == 10:
            broker.stop()  # the edge keeps collecting into its buffer
            time.sleep(8)
        if block == 20:
            assert outbox.pending()[0] > 0
            broker.start()
        time.sleep(0.1)
    _drain(outbox, forwarder)
    stop.set()
    thread.join(10)

    messages = _consume(broker.settings.kafka, topic("telemetry").name("edge"), 9000)
    per_asset = _in_arrival_order(messages)
    for asset in assets:
        assert per_asset[asset] == list(range(3000)), asset  # all, once, in order
    assert forwarder.stats.resent == 0


def test_a_record_kafka_refuses_becomes_a_dead_letter_and_the_rest_flows(broker, tmp_path):
    outbox = Outbox(tmp_path / "edge.sqlite")
    sink = BufferedSink(outbox, topic_prefix="edge", edge_filter=None)
    sink.readings(_readings("p/l/a1", 0, 100))
    telemetry = topic("telemetry").name("edge")
    outbox.append([(telemetry, b"p/l/a1", b'{"huge": "' + b"x" * 2_000_000 + b'"}')])
    sink.readings(_readings("p/l/a1", 100, 100))
    forwarder = Forwarder(outbox, broker.settings.kafka, batch=80, node="edge-test")
    stop, thread = _forwarding(forwarder)
    _drain(outbox, forwarder, timeout=30)
    stop.set()
    thread.join(10)

    assert _in_arrival_order(_consume(broker.settings.kafka, telemetry, 200))["p/l/a1"] == list(
        range(200)
    )
    letters = _consume(broker.settings.kafka, topic("dead_letter").name("edge"), 1)
    assert len(letters) == 1
    letter = orjson.loads(letters[0].value())
    assert letter["source_node"] == "edge-test"
    assert f"for {telemetry} (2000012 bytes)" in letter["reason"]
    assert "too large" in letter["reason"].lower()
    assert len(base64.b64decode(letter["raw"])) == 4096
    # Sent: the 200 readings and the dead letter itself.
    assert forwarder.stats.dead_letters == 1 and forwarder.stats.sent == 201


def test_sigkill_of_the_edge_process_loses_nothing_the_buffer_acknowledged(broker, tmp_path):
    import signal
    import subprocess
    import sys
    import textwrap

    buffer = tmp_path / "edge.sqlite"
    kafka = broker.settings.kafka
    script = textwrap.dedent(f"""
        import threading, time
        from pathlib import Path
        from plantlake.core.config import KafkaSettings
        from plantlake.ingest.buffer import Outbox
        from plantlake.ingest.buffered_sink import BufferedSink
        from plantlake.ingest.forwarder import Forwarder
        from plantlake.core.records import Quality, Reading
        outbox = Outbox(Path({str(buffer)!r}))
        sink = BufferedSink(outbox, topic_prefix="edge", edge_filter=None)
        kafka = KafkaSettings(bootstrap_servers={kafka.bootstrap_servers!r})
        threading.Thread(target=Forwarder(outbox, kafka, batch=200).run,
                         args=(threading.Event(),), daemon=True).start()
        start = int(__import__("sys").argv[1])
        for i in range(start, start + 100000):
            sink.readings([Reading("p/l/a", "t", float(i), "degC", Quality.GOOD, i, i, "t", "n", sequence=i)])
            print(i, flush=True)
            time.sleep(0.0005)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, "0"], stdout=subprocess.PIPE, text=True)
    last = -1
    for line in proc.stdout:
        last = int(line)
        if last >= 3000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The restarted edge process forwards what the killed one had buffered, then goes on.
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(last + 1)], stdout=subprocess.PIPE, text=True
    )
    for line in proc.stdout:
        if int(line) >= last + 500:
            break
    deadline = time.monotonic() + 60
    while Outbox(buffer).pending()[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    sequences = _by_identity(_consume(kafka, topic("telemetry").name("edge"), last + 500))["p/l/a"]
    assert sequences[: last + 1] == list(range(last + 1))  # everything acknowledged, once, in order


_EDGE_SCRIPT = """
import sys, time
from plantlake.core.config import Settings, KafkaSettings, EdgeSettings
from plantlake.core.records import Quality, Reading
from plantlake.ingest.runner import run_edge
from rich.console import Console

home, servers, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = Settings(home=home, kafka=KafkaSettings(bootstrap_servers=servers, topic_prefix="edge"),
                    edge=EdgeSettings(forwarder="process"))

def source(sink, stop):
    i = start
    while not stop.is_set():
        sink.readings([Reading("p/l/a", "t", float(j), "degC", Quality.GOOD, j, j, "t", "n", sequence=j)
                       for j in range(i, i + 100)])
        i += 100
        print(i, flush=True)
        time.sleep(0.01)

run_edge(settings, "proc-test", source, Console(stderr=True), report_every_s=1)
"""


def _children(pid: int) -> list[int]:
    """Live child processes of `pid` (from /proc; a zombie child no longer counts)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_the_forwarder_process_dies_with_its_edge_process_and_nothing_is_lost(broker, tmp_path):
    import signal
    import subprocess
    import sys

    servers = broker.settings.kafka.bootstrap_servers
    home = tmp_path / "home"

    def edge(start: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", _EDGE_SCRIPT, str(home), servers, str(start)],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip

    started = []
    try:
        first = edge(0)
        started.append(first)
        last = 0
        for line in first.stdout:
            last = int(line)
            if last >= 20_000:
                break
        (child,) = _children(first.pid)
        assert b"forwarder_process" in Path(f"/proc/{child}/cmdline").read_bytes()
        first.send_signal(signal.SIGKILL)
        first.wait()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{child}").exists()  # gone with its parent, not orphaned
        second = edge(last)
        started.append(second)
        for line in second.stdout:
            if int(line) >= last + 5_000:
                break
        second.send_signal(signal.SIGTERM)  # a clean stop drains the buffer first
        assert second.wait(timeout=60) == 0
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    per_asset = _by_identity(_consume(broker.settings.kafka, topic("telemetry").name("edge"),
                                      last + 5_000))  # fmt: skip
    sequences = per_asset["p/l/a"]
    assert sorted(set(sequences)) == list(range(len(set(sequences))))  # no hole
    assert len(set(sequences)) >= last + 5_000
