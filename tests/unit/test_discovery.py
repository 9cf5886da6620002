"""Registry drafts from discovered signals: quantities from units, review items, the files."""

from datetime import UTC, datetime

import pytest
import yaml

from plantlake.app.discover import DRAFT_FILE, refuse_overwrite, write_drafts
from plantlake.core.errors import ConfigError
from plantlake.core.registry_entries import parse_registry_yaml
from plantlake.ingest.discovery import (
    UNCLASSIFIED,
    Discovery,
    Signal,
    asset_class_of,
    draft_registry,
    draft_yaml,
    quantity_for,
    tag_list,
    tag_list_yaml,
)
from plantlake.ingest.filters import default_window_features
from plantlake.ingest.opcua.model import eu_information, sensor_variables, unit_from_eu
from plantlake.ingest.sparkplug.codec import DataType, Metric, PayloadError, encode_payload
from plantlake.ingest.sparkplug.discover import birth_signals, collect_births
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import OPCUA_NAMESPACE_INDEX, plant_registry_entries

AT_MS = 1_767_225_600_250  # 2026-01-01T00:00:00.250Z
NODE = "spBv1.0/plant1/NBIRTH/line1-gateway"
DEVICE = "spBv1.0/plant1/DBIRTH/line1-gateway/pump-02"


def _opcua(*signals: Signal) -> Discovery:
    return Discovery("opcua", "opc.tcp://plc:4840/", AT_MS, signals)


def _signal(sensor="flow", unit: str | None = "m3/h", asset="plant1/line1/pump-02", **kw):
    return Signal(asset, sensor, unit, f"ns=2;s={asset}/{sensor}", **kw)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("pump-02", "pump"), ("press01", "press"), ("motor_7", "motor"), ("line1-gateway",
     "line1-gateway"), ("42", UNCLASSIFIED), ("kiln", "kiln")],
)  # fmt: skip
def test_the_asset_class_is_a_guess_from_the_asset_name(name, kind):
    assert asset_class_of(name) == kind


@pytest.mark.parametrize(
    ("unit", "datatype", "quantity"),
    [("degC", None, "temperature"), ("K", None, "temperature"), ("psi", None, "pressure"),
     ("m3/h", None, "flow"), ("rpm", None, "speed"), ("mm/s", None, "vibration"),
     ("", None, "state"), (None, "BOOLEAN", "state")],
)  # fmt: skip
def test_the_quantity_follows_from_the_unit(unit, datatype, quantity):
    assert quantity_for(_signal(unit=unit, datatype=datatype)) == (quantity, None)


@pytest.mark.parametrize(
    ("unit", "datatype", "why"),
    [("widgets", None, "not one plantlake knows"), ("lux", None, "not one plantlake knows"),
     ("10**10**10", None, "not one plantlake knows"), (None, None, "no unit"),
     (None, "DOUBLE", "no unit")],
)  # fmt: skip
def test_a_unit_that_tells_no_known_quantity_needs_review(unit, datatype, why):
    quantity, reason = quantity_for(_signal(unit=unit, datatype=datatype))
    assert quantity is None and why in reason


def test_a_draft_entry_carries_path_parts_discovery_time_protocol_and_address():
    draft = draft_registry(_opcua(_signal()))
    (entry,) = draft.entries
    assert (entry.asset, entry.sensor, entry.asset_class, entry.quantity) == (
        "plant1/line1/pump-02", "flow", "pump", "flow")  # fmt: skip
    assert (entry.site, entry.line, entry.unit) == ("plant1", "line1", "m3/h")
    # The discovery time to the second, in UTC; still valid.
    assert entry.valid_from == datetime(2026, 1, 1, tzinfo=UTC) and entry.valid_to is None
    assert (entry.protocol, entry.address) == ("opcua", "ns=2;s=plant1/line1/pump-02/flow")
    assert draft.needs_review == ()


def test_signals_the_registry_cannot_hold_are_listed_for_review_not_dropped():
    draft = draft_registry(_opcua(
        _signal("flow"),
        _signal("level", unit="widgets"),
        _signal("bad name", unit="bar"),
        _signal("temp", unit="degC", asset="plant1/pump-09"),  # no line level
        _signal("label", unit=None, problem="a STRING metric"),
    ))  # fmt: skip
    assert [e.sensor for e in draft.entries] == ["flow"]
    reasons = {(r.asset, r.sensor): r.reason for r in draft.needs_review}
    assert "'widgets' is not one plantlake knows" in reasons[("plant1/line1/pump-02", "level")]
    assert reasons[("plant1/line1/pump-02", "bad name")].startswith("sensor:")
    assert "asset" in reasons[("plant1/pump-09", "temp")]
    assert reasons[("plant1/line1/pump-02", "label")] == "a STRING metric"


def test_a_signal_seen_twice_is_drafted_once_as_last_seen():
    draft = draft_registry(_opcua(_signal(unit="widgets"), _signal(unit="m3/h")))
    assert [(e.sensor, e.unit) for e in draft.entries] == [("flow", "m3/h")]
    assert draft.needs_review == ()


def test_the_draft_file_opens_with_what_to_review_and_loads_as_a_registry():
    discovery = _opcua(_signal("flow"), _signal("level", unit="widgets"))
    draft = draft_registry(discovery)
    text = draft_yaml(discovery, draft, import_hint="plantlake reference import --yaml d.yaml")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert "DRAFT" in header[0] and "opc.tcp://plc:4840/" in header[0]
    assert any("1 signals need review" in line for line in header)
    assert any("plantlake reference import --yaml d.yaml" in line for line in header)
    assert any("plant1/line1/pump-02 / level, unit 'widgets'" in line for line in header)
    assert parse_registry_yaml(text, source="draft") == list(draft.entries)


def test_the_opcua_tag_list_names_node_ids_with_units_ranges_and_verdicts():
    discovery = _opcua(_signal(eu_range=(90.0, 150.0)), _signal("level", unit="widgets"))
    tags = yaml.safe_load(tag_list_yaml(discovery, draft_registry(discovery)))["tags"]
    assert tags == [
        {"node_id": "ns=2;s=plant1/line1/pump-02/flow", "asset": "plant1/line1/pump-02",
         "sensor": "flow", "unit": "m3/h", "eu_range": {"low": 90.0, "high": 150.0},
         "quantity": "flow"},
        {"node_id": "ns=2;s=plant1/line1/pump-02/level", "asset": "plant1/line1/pump-02",
         "sensor": "level", "unit": "widgets",
         "review": "unit 'widgets' is not one plantlake knows: set the quantity by hand"},
    ]  # fmt: skip


def _birth(*metrics: Metric) -> bytes:
    return encode_payload(metrics, seq=0, timestamp_ms=AT_MS, birth=True)


def test_a_dbirth_gives_each_metric_with_datatype_unit_and_address():
    payload = _birth(
        Metric("bearing_temperature", DataType.DOUBLE, 55.0, alias=1, unit="degF"),
        Metric("running", DataType.BOOLEAN, True, alias=2),
        Metric("serial", DataType.STRING, "A-1", alias=3),
    )
    signals, notes = birth_signals(DEVICE, payload)
    assert notes == ()
    assert [(s.asset, s.sensor, s.unit, s.datatype, s.address) for s in signals] == [
        ("plant1/line1/pump-02", "bearing_temperature", "degF", "DOUBLE",
         "plant1/line1-gateway/pump-02/bearing_temperature"),
        ("plant1/line1/pump-02", "running", None, "BOOLEAN",
         "plant1/line1-gateway/pump-02/running"),
        ("plant1/line1/pump-02", "serial", None, "STRING", "plant1/line1-gateway/pump-02/serial"),
    ]  # fmt: skip
    assert signals[2].problem is not None and "numeric" in signals[2].problem
    draft = draft_registry(Discovery("sparkplug", "mqtt://b:1883", AT_MS, signals))
    assert [(e.sensor, e.quantity) for e in draft.entries] == [
        ("bearing_temperature", "temperature"), ("running", "state")]  # fmt: skip
    assert [r.sensor for r in draft.needs_review] == ["serial"]


def test_an_nbirth_gives_the_gateways_own_metrics_but_not_its_session_controls():
    payload = _birth(
        Metric("bdSeq", DataType.INT64, 3),
        Metric("Node Control/Rebirth", DataType.BOOLEAN, False),
        Metric("cpu_temperature", DataType.FLOAT, 41.0, alias=9, unit="degC"),
    )
    signals, _ = birth_signals(NODE, payload)
    assert [(s.asset, s.sensor, s.address) for s in signals] == [
        ("plant1/line1/line1-gateway", "cpu_temperature", "plant1/line1-gateway/cpu_temperature")]  # fmt: skip


def test_data_commands_and_state_are_not_births():
    data = encode_payload([Metric("x", DataType.DOUBLE, 1.0, alias=1)], seq=1, timestamp_ms=AT_MS)
    for topic in ("spBv1.0/plant1/DDATA/line1-gateway/pump-02", "spBv1.0/STATE/plantlake-host",
                  "spBv1.0/plant1/NCMD/line1-gateway"):  # fmt: skip
        assert birth_signals(topic, data) == ((), ())


def test_a_birth_that_is_not_sparkplug_is_a_note_not_a_crash():
    with pytest.raises(PayloadError):
        birth_signals(DEVICE, b"\xff\xfe garbage")
    good = _birth(Metric("flow", DataType.DOUBLE, 1.0, alias=1, unit="m3/h"))
    discovery = collect_births("mqtt://b:1883", AT_MS, [(DEVICE, b"\xff\xfe"), (DEVICE, good)])
    assert [s.sensor for s in discovery.signals] == ["flow"]
    assert len(discovery.notes) == 1 and discovery.notes[0].startswith(DEVICE)


def test_the_sparkplug_tag_list_names_metrics_with_datatypes():
    good = _birth(Metric("flow", DataType.DOUBLE, 1.0, alias=1, unit="m3/h"))
    discovery = collect_births("mqtt://b:1883", AT_MS, [(DEVICE, good)])
    listed = tag_list(discovery, draft_registry(discovery))
    assert (
        listed["protocol"] == "sparkplug" and listed["discovered_at"] == "2026-01-01T00:00:00.250Z"
    )
    assert listed["tags"] == [
        {"metric": "plant1/line1-gateway/pump-02/flow", "asset": "plant1/line1/pump-02",
         "sensor": "flow", "unit": "m3/h", "datatype": "DOUBLE", "quantity": "flow"}]  # fmt: skip


def test_what_the_simulated_server_describes_drafts_the_simulators_own_registry():
    """The pure half of the integration test: the EngineeringUnits the simulated OPC-UA server
    publishes, read back as the edge reads them, draft what the simulator's registry says."""
    plant = build_plant(7)
    served = sensor_variables(plant.by_protocol("opcua"))
    signals = [
        Signal(v.asset.path, v.sensor.name, unit_from_eu(eu_information(v.sensor.unit)),
               v.node_id(OPCUA_NAMESPACE_INDEX).to_string())
        for v in served
    ]  # fmt: skip
    draft = draft_registry(_opcua(*signals))
    expected = {
        (e.asset, e.sensor, e.quantity, e.unit, e.address)
        for e in plant_registry_entries(plant, default_window_features())
        if e.protocol == "opcua"
    }
    assert draft.needs_review == ()
    assert {(e.asset, e.sensor, e.quantity, e.unit, e.address) for e in draft.entries} == expected


def test_drafts_are_written_once_and_only_overwritten_with_force(tmp_path):
    discovery = _opcua(_signal())
    draft, paths = write_drafts(discovery, tmp_path / "out")
    assert [p.name for p in paths] == [DRAFT_FILE, "opcua-tags.yaml"]
    assert parse_registry_yaml(paths[0].read_text(), source="draft") == list(draft.entries)
    paths[0].write_text("# reviewed by hand\n")
    with pytest.raises(ConfigError, match="already exists"):
        write_drafts(discovery, tmp_path / "out")
    # The CLI checks before it discovers; a discovery of another protocol shares the draft.
    for protocol in ("opcua", "sparkplug"):
        with pytest.raises(ConfigError, match="--force"):
            refuse_overwrite(tmp_path / "out", protocol, force=False)
    write_drafts(discovery, tmp_path / "out", force=True)
    assert "reviewed by hand" not in paths[0].read_text()
    assert not list((tmp_path / "out").glob(".*partial"))
