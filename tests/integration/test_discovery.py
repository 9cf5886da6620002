"""Discovery against the simulated devices drafts the registry the simulator itself writes.

OPC-UA: `plantlake reference discover opcua` (the CLI, in a subprocess) against the simulated
server on a free loopback port. Sparkplug: the discovery listens on the real Mosquitto while a
primary host comes online and both simulated edge nodes of the plant connect and birth.
"""

import os
import secrets
import socket
import subprocess
import sys
import threading
import uuid

import pytest
import yaml
from pydantic import SecretStr
from rich.console import Console

from plantlake.app.local_secrets import ensure_local_secrets
from plantlake.core import unece
from plantlake.core.config import OpcUaSettings, Settings, SimulatorSettings, load_settings
from plantlake.core.registry_entries import RegistryEntry, parse_registry_yaml
from plantlake.core.units import ALIASES, registry
from plantlake.ingest.discovery import draft_registry
from plantlake.ingest.edge import MemorySink
from plantlake.ingest.filters import default_window_features
from plantlake.ingest.opcua.model import eu_range
from plantlake.ingest.sparkplug.discover import discover_sparkplug
from plantlake.ingest.sparkplug.host_client import HostClient
from plantlake.simulator.clock import SimClock
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import plant_registry_entries
from plantlake.simulator.sparkplug_node import SimulatedEdgeNode
from tests.integration.opcua_server_thread import OpcUaServerThread

pytestmark = pytest.mark.integration

PLANT = build_plant(7)


def _canonical_unit(unit: str | None) -> str | None:
    """What a unit means, however it is spelled: a UNECE code (CEL), our spelling (degC) or
    pint's (degree_Celsius) all give pint's canonical name; no unit and "one" give None."""
    if unit and unece.by_code(unit) is not None:
        unit = unece.unit_from_code(unit)
    return str(registry().parse_units(ALIASES.get(unit, unit))) if unit else None


def _meaning(entries: list[RegistryEntry]) -> set[tuple[str, str, str, str | None, str | None]]:
    return {(e.asset, e.sensor, e.quantity, _canonical_unit(e.unit), e.address) for e in entries}


def _simulators_registry(protocol: str) -> list[RegistryEntry]:
    """What the simulator writes for the raw sensors `protocol` serves (window features are
    computed at the edge, not discovered on a device)."""
    entries = plant_registry_entries(PLANT, default_window_features())
    return [e for e in entries if e.protocol == protocol]


def _current_classes(entries: list[RegistryEntry]) -> dict[tuple[str, str], str]:
    """asset_class of the interval still open (a remounted sensor has an earlier one too)."""
    return {(e.asset, e.sensor): e.asset_class for e in entries if e.valid_to is None}


# -- OPC-UA --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _plantlake(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from plantlake.app.cli import main; main()", *args],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=60,
    )  # fmt: skip


def test_opcua_discovery_drafts_the_registry_the_simulator_writes(tmp_path):
    home, out, port = tmp_path / "home", tmp_path / "drafts", _free_port()
    password = secrets.token_urlsafe(12)
    endpoint = f"opc.tcp://127.0.0.1:{port}/plantlake/"
    settings = Settings(
        home=home,
        opcua=OpcUaSettings(endpoint=endpoint, password=SecretStr(password)),
        simulator=SimulatorSettings(opcua_port=port),
    )
    env = {"PLANTLAKE_HOME": str(home), "PLANTLAKE_OPCUA__PASSWORD": password}
    with OpcUaServerThread(settings, PLANT, SimClock(PLANT.start_ms), start_timeout_s=30):
        # The edge's own login: Basic256Sha256 SignAndEncrypt, the server certificate pinned.
        run = _plantlake("reference", "discover", "opcua", endpoint, "--out", str(out), env=env)
    assert run.returncode == 0, run.stderr
    assert "4 assets, 18 sensors drafted, 0 need review" in run.stdout
    assert f"plantlake reference import --yaml {out / 'registry.draft.yaml'}" in run.stdout

    drafted = parse_registry_yaml((out / "registry.draft.yaml").read_text(), source="draft")
    expected = _simulators_registry("opcua")
    assert _meaning(drafted) == _meaning(expected)
    assert _current_classes(drafted) == _current_classes(expected)
    assert {e.protocol for e in drafted} == {"opcua"}

    tags = yaml.safe_load((out / "opcua-tags.yaml").read_text())
    assert tags["source"] == endpoint
    ranges = {(t["asset"], t["sensor"]): (t["eu_range"]["low"], t["eu_range"]["high"])
              for t in tags["tags"]}  # fmt: skip
    served = PLANT.by_protocol("opcua")
    assert ranges == {(a.path, s.name): eu_range(s) for a in served for s in a.sensors}
    assert {t["node_id"] for t in tags["tags"]} == {e.address for e in expected}

    # A draft is someone's review: a second discovery into the same folder refuses, before it
    # even connects (the server is gone).
    again = _plantlake("reference", "discover", "opcua", endpoint, "--out", str(out), env=env)
    assert again.returncode == 1
    assert "already exists" in again.stderr and "--force" in again.stderr


# -- Sparkplug -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mqtt_settings():
    """Only Mosquitto is needed here, not the whole stack."""
    from plantlake.services import stack

    loaded = ensure_local_secrets(load_settings())
    (health,) = stack.up(loaded, ("mosquitto",), Console(stderr=True))
    if not health.up:
        pytest.fail(f"mosquitto down after `plantlake up mosquitto`: {health.detail}")
    return loaded


def test_sparkplug_discovery_drafts_the_registry_the_simulator_writes(mqtt_settings):
    settings = mqtt_settings
    listening, found = threading.Event(), {}
    listener = threading.Thread(
        target=lambda: found.update(discovery=discover_sparkplug(settings.mqtt, 6.0,
                                                                 listening=listening)),
        daemon=True,
    )  # fmt: skip
    listener.start()
    assert listening.wait(15), "the discovery did not subscribe within 15 s"
    # Nodes birth once a primary host's STATE says online: a host of the test's own, and both
    # gateways of the plant, all connecting after the discovery listens.
    stop = threading.Event()
    tag = uuid.uuid4().hex[:6]
    host = HostClient(settings.mqtt, MemorySink(),
                      client_id=f"{settings.mqtt.host_app_id}-discover-test-{tag}")  # fmt: skip
    nodes = [
        SimulatedEdgeNode(settings.mqtt, PLANT, SimClock(PLANT.start_ms), node,
                          client_id=f"sim-discover-{node.edge_node_id}-{tag}")
        for node in settings.mqtt.edge_nodes
    ]  # fmt: skip
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in (host, *nodes)]
    for thread in threads:
        thread.start()
    try:
        listener.join(30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert "discovery" in found, "the discovery did not finish"
    discovery = found["discovery"]

    # Only what our two gateways serve (anyone may be publishing on the shared broker).
    gateways = tuple(f"{n.group_id}/{n.edge_node_id}/" for n in settings.mqtt.edge_nodes)
    draft = draft_registry(discovery)
    drafted = [e for e in draft.entries if (e.address or "").startswith(gateways)]
    expected = _simulators_registry("sparkplug")
    assert _meaning(drafted) == _meaning(expected)
    assert _current_classes(drafted) == _current_classes(expected)
    assert not [r for r in draft.needs_review if r.address.startswith(gateways)]
    # The running flag has no engUnit; its Boolean datatype makes it a state.
    assert {e.quantity for e in drafted if e.sensor == "running"} == {"state"}
