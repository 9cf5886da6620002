"""Each protocol end to end, as a user runs it: `plantlake simulate` and `plantlake ingest <source>`
processes, through the edge filter and disk buffer, into Kafka topics by data class."""

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict

import orjson
import pytest
from confluent_kafka import Consumer

from plantlake.core.topics import topic
from plantlake.simulator.plant import build_plant

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SOURCES = ("sparkplug", "modbus", "opcua", "daq")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_plantlake(args, env, log):
    """`plantlake ARGS` as its own process, output to the open file `log`."""
    return subprocess.Popen([sys.executable, "-c", "from plantlake.app.cli import main; main()", *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def edge_env(settings, tmp_path) -> dict[str, str]:
    """Environment for `plantlake simulate` and `plantlake ingest` on `settings`' topics, with
    device servers on free ports and edge buffers under `tmp_path`."""
    opcua_port, modbus_port = _free_port(), _free_port()
    return {
        **os.environ,
        "PLANTLAKE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "PLANTLAKE_EDGE__BUFFER_DIR": str(tmp_path / "buffers"),
        "PLANTLAKE_SIMULATOR__OPCUA_PORT": str(opcua_port),
        "PLANTLAKE_SIMULATOR__MODBUS_PORT": str(modbus_port),
        "PLANTLAKE_MODBUS__PORT": str(modbus_port),
        "PLANTLAKE_OPCUA__ENDPOINT": f"opc.tcp://127.0.0.1:{opcua_port}/plantlake/",
        "PLANTLAKE_SIMULATOR__SPEED": "5",
    }


GARBAGE = b"\xff\x00 not a sparkplug payload"


def _misbehaving_device(settings):
    """A client with an edge node's credentials, to publish an undecodable payload on its own
    (permitted) DDATA topic."""
    import paho.mqtt.client as mqtt

    node = settings.mqtt.edge_nodes[0]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"garbage-{time.time_ns()}")
    password = settings.mqtt.edge_passwords[node.edge_node_id].get_secret_value()
    client.username_pw_set(node.edge_node_id, password)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    topic_name = f"spBv1.0/{node.group_id}/DDATA/{node.edge_node_id}/pump-02"
    return client, topic_name


def test_every_protocol_reaches_kafka_through_its_edge_process(isolated_kafka, tmp_path):
    settings = isolated_kafka
    env = edge_env(settings, tmp_path)
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("simulate", *SOURCES)}
    procs = {"simulate": start_plantlake(["simulate"], env, logs["simulate"])}
    time.sleep(3)  # let the device servers bind before the clients connect
    procs |= {name: start_plantlake(["ingest", name], env, logs[name]) for name in SOURCES}

    device, garbage_topic = _misbehaving_device(settings)
    garbage_sent = False
    plant = build_plant(settings.simulator.seed)
    expected = {p: {a.path for a in plant.by_protocol(p)} for p in ("sparkplug", "modbus", "opcua")}
    expected["daq"] = {a.path for a in plant.assets if any(s.rate_hz for s in a.sensors)}
    seen: dict[str, set[str]] = defaultdict(set)
    feature_sensors: set[str] = set()
    filter_versions: set[str | None] = set()
    lifecycle: set[str] = set()
    dead_letters: list[dict] = []
    prefix = settings.kafka.topic_prefix
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": prefix,
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe(
        [topic(t).name(prefix) for t in ("telemetry", "edge_features", "lifecycle", "dead_letter")]
    )
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline and (
            any(seen[p] != expected[p] for p in expected) or not dead_letters
        ):
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            record = orjson.loads(msg.value())
            if msg.topic().endswith(".dead_letter"):
                dead_letters.append(record)
                continue
            if msg.topic().endswith(".lifecycle"):
                lifecycle.add(f"{record['source_protocol']}:{record['kind']}")
                if "sparkplug:birth" in lifecycle and not garbage_sent:
                    # The host has seen a birth, so it is subscribed: now it will get this.
                    device.publish(garbage_topic, GARBAGE, qos=1).wait_for_publish(10)
                    garbage_sent = True
                continue
            assert msg.key().decode() == record["asset"]  # keyed by asset
            seen[record["source_protocol"]].add(record["asset"])
            filter_versions.add(record["filter_version"])
            if msg.topic().endswith(".edge_features"):
                feature_sensors.add(record["sensor"].split(".", 1)[1])
    finally:
        consumer.close()
        device.loop_stop()
        device.disconnect()
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(timeout=60) for name, proc in procs.items()}
        for handle in logs.values():
            handle.close()
    report = {n: (tmp_path / f"{n}.log").read_text()[-1500:] for n in procs}
    for protocol, assets in expected.items():
        assert seen[protocol] == assets, (protocol, report)
    assert feature_sensors >= {"rms", "peak", "crest", "band_0_50"}
    assert filter_versions == {"2026-11-25.1"}
    assert "sparkplug:birth" in lifecycle
    garbage = [d for d in dead_letters if base64.b64decode(d["raw"]) == GARBAGE]
    assert garbage and garbage[0]["source_protocol"] == "sparkplug" and garbage[0]["reason"]
    assert all(code == 0 for code in codes.values()), (codes, report)
    for name in SOURCES:
        assert "0 kept in the buffer" in report[name], report[name]
