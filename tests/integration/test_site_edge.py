"""A site from nothing to silver: `plantlake ingest modbus --config tests/site/site.toml` against
the site's own Modbus devices (a hand-written register map, other unit ids, psi and degF), then
its registry CSV imported and bronze and silver run, each a process of its own. No simulator
anywhere: the readings reach Kafka as the map describes them and silver.telemetry in canonical
units, none held as unknown, and no process imports `plantlake.simulator`."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
from confluent_kafka import Consumer
from rich.console import Console

from plantlake.app.local_secrets import ensure_local_secrets
from plantlake.core.config import Settings, load_settings
from plantlake.core.topics import topic
from plantlake.ingest.modbus.register_map import load_register_map
from tests.site.device_servers import SITE_CONFIG, SITE_DIR, SiteModbusServer, served_value

pytestmark = pytest.mark.integration

# Runs the CLI like `plantlake`, and at exit writes which simulator modules it had imported.
EDGE = """
import atexit, json, sys
report = sys.argv.pop(1)
def _modules():
    loaded = sorted(m for m in sys.modules if m.split(".")[:2] == ["plantlake", "simulator"])
    with open(report, "w") as handle:
        json.dump(loaded, handle)
atexit.register(_modules)
from plantlake.app.cli import main
main()
"""


@pytest.fixture
def site_kafka() -> Iterator[Settings]:
    """The local broker (only it: the edge needs nothing else), with topics of this test's own."""
    from plantlake.services import stack
    from plantlake.services.kafka import delete_prefixed_topics, ensure_topics

    settings = ensure_local_secrets(load_settings())
    if not all(h.up for h in stack.up(settings, ("kafka",), Console(stderr=True))):
        pytest.fail("Kafka is down after `plantlake up kafka`")
    prefix = f"test-site-{uuid.uuid4().hex[:8]}"
    isolated = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix})}
    )
    ensure_topics(isolated, lambda _: None)
    yield isolated
    delete_prefixed_topics(isolated)


@pytest.fixture
def site_devices() -> Iterator[SiteModbusServer]:
    """The site's Modbus gateway, from its register map, on a free port, in a thread."""
    register_map = load_register_map(SITE_DIR / "register-map.yaml")
    server = SiteModbusServer(register_map)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
    yield server
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def test_a_site_goes_from_its_devices_to_silver_without_the_simulator(
    site_kafka, site_devices, tmp_path
):
    register_map = site_devices.register_map
    modules_report = tmp_path / "modules.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PLANTLAKE_")},
        "PLANTLAKE_HOME": str(tmp_path / "home"),  # a site's own, no generated secrets in it
        "PLANTLAKE_KAFKA__BOOTSTRAP_SERVERS": site_kafka.kafka.bootstrap_servers,
        "PLANTLAKE_KAFKA__TOPIC_PREFIX": site_kafka.kafka.topic_prefix,
        "PLANTLAKE_EDGE__BUFFER_DIR": str(tmp_path / "buffer"),
        "PLANTLAKE_MODBUS__PORT": str(site_devices.port),
    }
    log = (tmp_path / "edge.log").open("wb")
    edge = subprocess.Popen(
        [sys.executable, "-c", EDGE, str(modules_report),
         "ingest", "modbus", "--config", str(SITE_CONFIG)],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    prefix = site_kafka.kafka.topic_prefix
    expected = {(tag.asset, tag.sensor): tag for tag in register_map.tags}
    readings: dict[tuple[str, str], dict] = {}
    dead_letters: list[dict] = []
    consumer = Consumer({"bootstrap.servers": site_kafka.kafka.bootstrap_servers,
                         "group.id": prefix, "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic("telemetry").name(prefix), topic("dead_letter").name(prefix)])
    deadline = time.monotonic() + 40
    try:
        while time.monotonic() < deadline and readings.keys() != expected.keys():
            if edge.poll() is not None:
                break
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            record = orjson.loads(msg.value())
            if msg.topic().endswith(".dead_letter"):
                dead_letters.append(record)
            else:
                readings.setdefault((record["asset"], record["sensor"]), record)
    finally:
        consumer.close()
        if edge.poll() is None:
            edge.send_signal(signal.SIGTERM)
        code = edge.wait(timeout=30)
        log.close()
    output = (tmp_path / "edge.log").read_text()

    assert code == 0, output[-3000:]
    assert readings.keys() == expected.keys(), output[-3000:]
    assert dead_letters == []
    for key, record in readings.items():
        tag = expected[key]
        assert record["unit"] == tag.unit
        assert record["value"] == pytest.approx(served_value(tag))
        assert record["quality"] == "Good"
        assert record["source_protocol"] == "modbus"
        assert record["source_node"] == f"127.0.0.1:{site_devices.port}/{tag.device_id}"
    assert {r["unit"] for r in readings.values()} >= {"psi", "degF"}
    # The edge process, from the CLI to its exit, never loaded the simulated plant.
    assert json.loads(modules_report.read_text()) == []

    # On to the lake, as the README's "Connect your plant" goes: import the site's registry
    # CSV, land bronze, refine silver; each step its own process, none loading the simulator.
    lake = {
        **env,
        "PLANTLAKE_LAKE__ROOT": f"file://{tmp_path}/lake",
        "PLANTLAKE_SPARK__MASTER": "local[2]",
        "PLANTLAKE_SPARK__MANAGED": "false",
    }
    steps = {
        "import": ["reference", "import", "--csv", str(SITE_DIR / "registry.csv")],
        "bronze": ["pipeline", "run", "bronze", "--once"],
        "silver": ["pipeline", "run", "silver", "--once"],
    }
    for name, args in steps.items():
        report = tmp_path / f"{name}-modules.json"
        done = subprocess.run(
            [sys.executable, "-c", EDGE, str(report), "--config", str(SITE_CONFIG), *args],
            env=lake, cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"{name}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
        assert json.loads(report.read_text()) == [], name

    from deltalake import DeltaTable

    silver = DeltaTable(f"{tmp_path}/lake/silver/telemetry").to_pyarrow_table().to_pylist()
    landed = {(r["asset"], r["sensor"]): r for r in silver}
    assert landed.keys() == expected.keys()  # every reading of the map: none held as unknown
    for key, row in landed.items():
        assert row["asset_class"] == "feed_pump"
        assert row["unit"] == {"psi": "bar", "degF": "degC", "A": "A", "": ""}[expected[key].unit]
    temp = landed[("acme/boiler-house/feedpump-1", "bearing_temp_de")]
    assert temp["value"] == pytest.approx(
        (served_value(expected[temp["asset"], temp["sensor"]]) - 32) / 1.8
    )
