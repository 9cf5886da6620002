"""A site's edge configuration: the settings file (relative paths, no credentials), the register
map template, the test site's files, the edge refusing the simulator's stand-ins, the units."""

import configparser
import csv
import subprocess
import sys
from pathlib import Path

import pytest

from plantlake.app.edge_sources import REGISTER_MAP_TEMPLATE, make_source
from plantlake.core.config import Settings, file_values, load_settings
from plantlake.core.errors import ConfigError
from plantlake.core.registry_entries import FIELDS, RegistryEntry
from plantlake.core.units import quantity_of
from plantlake.ingest.modbus.register_map import load_register_map
from plantlake.ingest.modbus.registers import ByteOrder, RegisterType, Table
from tests.site.device_servers import SITE_CONFIG, SITE_DIR, SITE_REGISTRY_CSV, SITE_VALUES

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "infra" / "systemd"


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No PLANTLAKE_* from the developer's shell; a home of its own."""
    for key in list(__import__("os").environ):
        if key.startswith("PLANTLAKE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PLANTLAKE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_relative_paths_in_a_settings_file_are_relative_to_it(tmp_path):
    file = tmp_path / "etc" / "edge.toml"
    data = {
        "modbus": {"register_map": "maps/pumps.yaml", "port": 502},
        "kafka": {"ssl_ca": "/etc/ca.pem"},
        "edge": {"buffer_dir": "~/buffer"},
    }
    values = file_values(data, Settings, file=file)
    assert values["modbus"] == {"register_map": str(tmp_path / "etc/maps/pumps.yaml"), "port": 502}
    assert values["kafka"]["ssl_ca"] == "/etc/ca.pem"
    assert values["edge"]["buffer_dir"] == str(Path.home() / "buffer")


@pytest.mark.parametrize(
    ("data", "variable"),
    [
        ({"opcua": {"password": "hunter2"}}, "PLANTLAKE_OPCUA__PASSWORD"),
        ({"s3": {"secret_key": "x"}}, "PLANTLAKE_S3__SECRET_KEY"),
        ({"mqtt": {"edge_passwords": {"gw": "x"}}}, "PLANTLAKE_MQTT__EDGE_PASSWORDS"),
    ],
)
def test_a_settings_file_may_not_hold_credentials(tmp_path, data, variable):
    with pytest.raises(ConfigError) as info:
        file_values(data, Settings, file=tmp_path / "edge.toml")
    assert info.value.code == "config"
    assert str(tmp_path / "edge.toml") in str(info.value)
    assert variable in str(info.value)


def test_a_broken_settings_file_is_a_config_error_naming_it(clean_env):
    file = clean_env / "edge.toml"
    file.write_text("[modbus\nport = 502\n")
    with pytest.raises(ConfigError, match="edge.toml is not valid TOML"):
        load_settings(file)


def test_the_site_settings_load_with_the_map_beside_them(clean_env):
    settings = load_settings(SITE_CONFIG)
    assert settings.modbus.register_map == SITE_DIR / "register-map.yaml"
    assert [(n.group_id, n.edge_node_id) for n in settings.mqtt.edge_nodes] == [
        ("acme", "boiler-house-gw")
    ]


def test_the_example_edge_settings_load(clean_env):
    example = REPO / "infra" / "site" / "edge.example.toml"
    settings = load_settings(example)
    assert settings.modbus.register_map == example.parent / "register-map.yaml"
    assert settings.opcua.server_certificate == example.parent / "plc-7.der"
    assert settings.kafka.managed is False


def test_the_register_map_template_loads_and_shows_every_table_type_and_option():
    register_map = load_register_map(REPO / REGISTER_MAP_TEMPLATE)
    tags = register_map.tags
    assert {t.table for t in tags} == set(Table)
    assert {t.type for t in tags} == set(RegisterType)
    assert {t.order for t in tags} >= {ByteOrder.ABCD, ByteOrder.CDAB}
    assert any(t.scale != 1 for t in tags)
    text = (REPO / REGISTER_MAP_TEMPLATE).read_text()
    for word in ("device_id", "4xxxx", "40001", "scale", "offset", "order", "poll", "unit"):
        assert word in text


def test_the_test_site_shares_nothing_with_the_simulated_plant():
    from plantlake.ingest.modbus.register_map import plant_register_map
    from plantlake.simulator.plant import build_plant

    site = load_register_map(SITE_DIR / "register-map.yaml")
    plant = build_plant(Settings.model_fields["simulator"].default.seed)
    simulated = plant_register_map(plant)
    assert not {a.path for a in plant.assets} & set(site.devices().values())
    assert not {s.name for a in plant.assets for s in a.sensors} & {t.sensor for t in site.tags}
    assert not set(simulated.devices()) & set(site.devices())
    assert {t.unit for t in site.tags} >= {"psi", "degF"}
    assert {(t.asset, t.sensor) for t in site.tags} == set(SITE_VALUES)


def test_the_site_registry_describes_every_mapped_sensor_as_the_map_does():
    site = load_register_map(SITE_DIR / "register-map.yaml")
    with SITE_REGISTRY_CSV.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == FIELDS
        entries = [RegistryEntry.model_validate(row) for row in reader]
    by_key = {(e.asset, e.sensor): e for e in entries}
    assert len(by_key) == len(entries) == len(site.tags)
    for tag in site.tags:
        entry = by_key[(tag.asset, tag.sensor)]
        assert entry.protocol == "modbus"
        assert entry.address == f"{tag.device_id}:{tag.table}:{tag.address}"
        assert (entry.unit or "") == (tag.unit or "")
        assert entry.quantity == quantity_of(tag.unit)


def test_a_site_modbus_edge_needs_a_register_map(clean_env):
    settings = load_settings(modbus={"host": "10.0.0.9", "port": 502})
    with pytest.raises(ConfigError) as info:
        make_source(settings, "modbus", site=True)
    assert info.value.code == "config"
    assert "10.0.0.9:502" in str(info.value)
    assert REGISTER_MAP_TEMPLATE in str(info.value)


def test_a_site_has_no_daq_edge(clean_env):
    with pytest.raises(ConfigError, match="site-specific"):
        make_source(load_settings(), "daq", site=True)


def test_a_site_edge_never_imports_the_simulator(clean_env):
    """Every site source is built, and the CLI loaded, in a fresh interpreter."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from plantlake.app import cli\n"
        "from plantlake.app.edge_sources import make_source\n"
        "from plantlake.core.config import load_settings\n"
        f"settings = load_settings(Path({str(SITE_CONFIG)!r}))\n"
        "for name in ('opcua', 'modbus', 'sparkplug'):\n"
        "    make_source(settings, name, site=True)\n"
        "print(sorted(m for m in sys.modules if m.startswith('plantlake.simulator')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_ingest_with_a_site_config_refuses_simulator_options(clean_env):
    done = subprocess.run(
        [sys.executable, "-c", "from plantlake.app.cli import main; main()",
         "ingest", "modbus", "--config", str(SITE_CONFIG), "--seed", "3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "error [plantlake]: --speed and --seed" in done.stderr


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / name)
    return parser


def test_the_edge_unit_runs_a_site_edge_and_restarts_forever():
    service = _unit("plantlake-ingest@.service")["Service"]
    command = service["ExecStart"].split()
    assert command[1:] == ["ingest", "%i", "--config", "/etc/plantlake/edge-%i.toml"]
    assert service["Restart"] == "always"
    assert service["User"] == "plantlake"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    # Environment= comes twice; configparser keeps only the last.
    text = (SYSTEMD / "plantlake-ingest@.service").read_text()
    assert "\nEnvironment=PLANTLAKE_HOME=/var/lib/plantlake\n" in text
    assert service["StateDirectory"] == "plantlake"


def test_the_pipeline_unit_runs_the_lake_path():
    service = _unit("plantlake-pipeline.service")["Service"]
    assert service["ExecStart"].split()[1:] == [
        "--config", "/etc/plantlake/plantlake.toml", "pipeline", "up",
    ]  # fmt: skip
    assert service["Restart"] == "always"
