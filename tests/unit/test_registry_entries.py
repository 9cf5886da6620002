"""The asset registry as a site's file: CSV and YAML parsing, whole-file rules, writers, table
rows, the published schema, and the simulated plant's registry."""

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantlake.core.errors import ConfigError
from plantlake.core.registry_entries import (
    FIELDS,
    RegistryEntry,
    RegistryFileError,
    entries_from_rows,
    entry_rows,
    parse_registry_csv,
    parse_registry_yaml,
    registry_csv,
    registry_json_schema,
    registry_yaml,
)
from plantlake.core.units import KNOWN_QUANTITIES
from plantlake.ingest.filters import default_window_features
from plantlake.ingest.modbus.register_map import plant_register_map
from plantlake.ingest.opcua.model import SensorVariable
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import REMOUNTS, plant_registry_entries

SCHEMAS = Path(__file__).resolve().parents[2] / "infra" / "schemas"
SCHEMA_FILE = SCHEMAS / "asset_registry.schema.json"
EXAMPLE_FILE = SCHEMAS / "asset_registry.example.csv"

HEADER = ",".join(FIELDS)
PRESS = "plant1/line1/press-01"


def _row(sensor="hydraulic_pressure", quantity="pressure", valid_from="2026-01-01T00:00:00Z",
         valid_to="", asset=PRESS, asset_class="press", site="plant1", line="line1",
         unit="bar", protocol="modbus", address="1:holding:0") -> str:  # fmt: skip
    return ",".join([asset, sensor, asset_class, quantity, site, line, valid_from, valid_to, unit,
                     protocol, address])  # fmt: skip


def _csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def _problems(excinfo) -> list[tuple[tuple[int, ...], str | None]]:
    return [(p.lines, p.field) for p in excinfo.value.problems]


def _entry(sensor="flow", valid_from=datetime(2026, 1, 1, tzinfo=UTC), valid_to=None, **kw):
    fields = {"asset": "plant1/line1/pump-02", "sensor": sensor, "asset_class": "pump",
              "quantity": "flow", "site": "plant1", "line": "line1", "valid_from": valid_from,
              "valid_to": valid_to, **kw}  # fmt: skip
    return RegistryEntry(**fields)


# -- parsing -------------------------------------------------------------------------------------


def test_a_valid_csv_gives_its_entries_in_file_order():
    text = _csv(
        _row(),
        _row("running", "state", unit="", address="1:coil:0"),
        _row("bearing_temperature", "temperature", "2026-01-01 00:00", unit="degC", protocol="",
             address=""),
    )  # fmt: skip
    entries = parse_registry_csv(text, source="registry.csv")
    assert [e.sensor for e in entries] == ["hydraulic_pressure", "running", "bearing_temperature"]
    first, running, temperature = entries
    assert first.valid_from == datetime(2026, 1, 1, tzinfo=UTC) and first.valid_to is None
    assert (first.unit, first.protocol, first.address) == ("bar", "modbus", "1:holding:0")
    assert running.unit is None
    # No offset means UTC; empty cells are missing values.
    assert temperature.valid_from.tzinfo is not None
    assert temperature.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert (temperature.protocol, temperature.address) == (None, None)


def test_a_csv_with_crlf_a_bom_blank_lines_and_columns_in_another_order_is_read():
    columns = list(reversed(FIELDS))
    values = dict(zip(FIELDS, _row().split(","), strict=True))
    text = "\ufeff" + ",".join(columns) + "\r\n\r\n" + ",".join(values[c] for c in columns) + "\r\n"
    [entry] = parse_registry_csv(text, source="registry.csv")
    assert entry.asset == PRESS and entry.address == "1:holding:0"


def test_a_valid_yaml_gives_its_entries():
    text = f"""\
version: 1
entries:
  - {{asset: {PRESS}, sensor: hydraulic_pressure, asset_class: press, quantity: pressure,
     site: plant1, line: line1, valid_from: 2026-01-01T00:00:00Z, unit: bar}}
  - asset: {PRESS}
    sensor: running
    asset_class: press
    quantity: state
    site: plant1
    line: line1
    valid_from: 2026-01-01
    valid_to: 2026-02-01T01:00:00+01:00
    protocol: opcua
    address: ns=2;s={PRESS}/running
"""
    first, running = parse_registry_yaml(text, source="registry.yaml")
    assert first.unit == "bar" and first.valid_to is None and first.protocol is None
    assert running.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert running.valid_to == datetime(2026, 2, 1, tzinfo=UTC)  # the offset, converted to UTC
    assert running.address == f"ns=2;s={PRESS}/running"


def test_an_unknown_quantity_names_the_line_and_the_field():
    text = _csv(_row(), _row(), _row("flow", "flow"), _row(), _row(), _row("p2", "presure"))
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(text, source="registry.csv")
    assert excinfo.value.code == "config" and isinstance(excinfo.value, ConfigError)
    # Physical lines: the header is line 1, so the sixth row is line 7.
    assert ((7,), "quantity") in _problems(excinfo)
    assert "registry.csv line 7: quantity: unknown quantity 'presure'" in str(excinfo.value)


def test_every_bad_line_is_reported_at_once():
    text = _csv(
        _row(),
        _row("a", "presure"),  # line 3
        _row("b", valid_from="yesterday"),  # line 4
        _row("c", protocol="profibus"),  # line 5
        _row("d"),
        _row("e", asset_class="a class", unit="", valid_to="2025-01-01T00:00:00Z"),  # line 7
        "plant1/line1/press-01,f,press",  # line 8: too few cells
    )
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(text, source="registry.csv")
    problems = _problems(excinfo)
    assert ((3,), "quantity") in problems
    assert ((4,), "valid_from") in problems
    assert ((5,), "protocol") in problems
    assert ((7,), "asset_class") in problems
    assert {p[0] for p in problems} == {(3,), (4,), (5,), (7,), (8,)}
    message = str(excinfo.value)
    assert all(f"line {n}" in message for n in (3, 4, 5, 7, 8))


def test_a_timestamp_written_as_a_number_is_refused():
    # pydantic would read 20260108 as Unix seconds (August 1970).
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(_csv(_row(valid_from="20260108")), source="registry.csv")
    assert _problems(excinfo) == [((2,), "valid_from")]


def test_an_asset_not_under_its_site_and_line_is_refused():
    text = _csv(_row(line="line2"), _row("ok"), _row("x", site="plant2"))
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(text, source="registry.csv")
    assert [p[0] for p in _problems(excinfo)] == [(2,), (4,)]


def test_valid_to_not_after_valid_from_is_refused():
    same = "2026-01-01T00:00:00Z"
    text = _csv(_row(valid_to=same), _row("b", valid_to="2025-12-31T00:00:00Z"))
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(text, source="registry.csv")
    assert [p[0] for p in _problems(excinfo)] == [(2,), (3,)]
    assert all("valid_to" in p.message for p in excinfo.value.problems)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (HEADER + ",comment", "unknown columns ['comment']"),
        (HEADER.replace(",address", ""), "missing columns ['address']"),
        (HEADER.replace("unit", "sensor"), "repeated columns ['sensor']"),
        ("", "no header line"),
    ],
)
def test_unknown_missing_or_repeated_columns_are_refused(header, why):
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(header + "\n" + _row() + "\n" if header else "", source="registry.csv")
    assert any(why in p.message and p.lines == (1,) for p in excinfo.value.problems)


def test_unknown_and_missing_yaml_keys_are_refused_with_their_entry_lines():
    text = f"""\
version: 1
entries:
  - {{asset: {PRESS}, sensor: a, asset_class: press, quantity: pressure,
     site: plant1, line: line1, valid_from: 2026-01-01T00:00:00Z}}
  - {{asset: {PRESS}, sensor: b, asset_class: press, quantity: pressure,
     site: plant1, line: line1, valid_from: 2026-01-01T00:00:00Z, colour: red}}
  - {{asset: {PRESS}, sensor: c, asset_class: press, site: plant1, line: line1,
     valid_from: 2026-01-01T00:00:00Z}}
  - just a string
notes: hello
"""
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_yaml(text, source="registry.yaml")
    assert _problems(excinfo) == [((5,), "colour"), ((7,), "quantity"), ((9,), None),
                                  ((10,), "notes")]  # fmt: skip


@pytest.mark.parametrize(
    "text", ["", "- a list\n", "entries: [unclosed\n", "---\nentries: []\n---\nentries: []\n"]
)
def test_yaml_that_is_no_registry_is_refused(text):
    with pytest.raises(ConfigError):
        parse_registry_yaml(text, source="registry.yaml")


def test_a_wrong_yaml_version_or_entries_not_a_list_is_refused():
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_yaml("version: 2\nentries: {}\n", source="registry.yaml")
    assert _problems(excinfo) == [((1,), "version"), ((2,), "entries")]
    assert parse_registry_yaml("entries: []\n", source="registry.yaml") == []


# -- whole-file rules ----------------------------------------------------------------------------


def test_a_duplicate_key_names_both_lines():
    text = _csv(_row(), _row("flow", "flow"), _row(asset_class="pump"))
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(text, source="registry.csv")
    assert _problems(excinfo) == [((2, 4), None)]
    assert "listed twice" in excinfo.value.problems[0].message


def test_overlapping_intervals_name_both_lines():
    text = _csv(
        _row(valid_to="2026-02-01T00:00:00Z"),
        _row("flow", "flow"),
        _row(valid_from="2026-01-15T00:00:00Z"),  # starts inside line 2's interval
    )
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(text, source="registry.csv")
    assert _problems(excinfo) == [((2, 4), None)]
    assert "overlaps" in excinfo.value.problems[0].message
    assert "registry.csv lines 2 and 4" in str(excinfo.value)


def test_two_open_intervals_overlap_and_a_long_interval_is_checked_against_all_later_ones():
    opened = _csv(_row(), _row(valid_from="2026-03-01T00:00:00Z"))
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(opened, source="registry.csv")
    assert _problems(excinfo) == [((2, 3), None)]

    long = _csv(
        _row(valid_to="2026-06-01T00:00:00Z"),
        _row(valid_from="2026-02-01T00:00:00Z", valid_to="2026-03-01T00:00:00Z"),
        _row(valid_from="2026-04-01T00:00:00Z", valid_to="2026-05-01T00:00:00Z"),
    )
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(long, source="registry.csv")
    assert _problems(excinfo) == [((2, 3), None), ((2, 4), None)]


def test_adjacent_intervals_and_a_quantity_change_across_them_are_fine():
    # A remount: the interval ends where the next begins, and the sensor now measures another
    # quantity on another kind of machine.
    text = _csv(
        _row(valid_to="2026-02-01T00:00:00Z"),
        _row(valid_from="2026-02-01T00:00:00Z", valid_to="2026-03-01T00:00:00Z",
             asset_class="pump", quantity="flow"),
        _row(valid_from="2026-03-01T00:00:00Z"),
    )  # fmt: skip
    entries = parse_registry_csv(text, source="registry.csv")
    assert [e.quantity for e in entries] == ["pressure", "flow", "pressure"]


def test_row_and_file_problems_are_reported_together():
    text = _csv(_row(), _row("a", "presure"), _row())
    with pytest.raises(RegistryFileError) as excinfo:
        parse_registry_csv(text, source="registry.csv")
    assert _problems(excinfo) == [((2, 4), None), ((3,), "quantity")]


# -- writers and rows ----------------------------------------------------------------------------


def _plant_entries() -> list[RegistryEntry]:
    return plant_registry_entries(build_plant(7), default_window_features())


def test_the_writers_sort_by_key_and_write_utc_timestamps_with_z():
    later = _entry("b", valid_from=datetime(2026, 1, 2, 1, 0, tzinfo=timezone(timedelta(hours=1))))
    earlier = _entry("b", valid_from=datetime(2025, 1, 1, tzinfo=UTC),
                     valid_to=datetime(2026, 1, 2, tzinfo=UTC))  # fmt: skip
    text = registry_csv([later, _entry("a"), earlier])
    lines = text.splitlines()
    assert lines[0] == HEADER
    assert [line.split(",")[1] for line in lines[1:]] == ["a", "b", "b"]
    assert lines[2].split(",")[6:8] == ["2025-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]
    assert lines[3].split(",")[6:8] == ["2026-01-02T00:00:00Z", ""]
    assert "valid_from: 2026-01-02T00:00:00Z" in registry_yaml([later])
    assert registry_csv([later, earlier]) == registry_csv([earlier, later])


@pytest.mark.parametrize(
    ("write", "parse"),
    [(registry_csv, parse_registry_csv), (registry_yaml, parse_registry_yaml)],
)
def test_the_plant_registry_round_trips(write, parse):
    entries = sorted(_plant_entries(), key=lambda e: e.key)
    assert parse(write(entries), source="registry") == entries


_names = st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_text = st.none() | st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20
).map(str.strip).filter(bool)


@st.composite
def _entries(draw) -> list[RegistryEntry]:
    site, line = draw(_names), draw(_names)
    entries = []
    for i, (name, sensor) in enumerate(draw(st.lists(st.tuples(_names, _names), max_size=5))):
        start = draw(_times)
        end = draw(st.none() | st.just(start + timedelta(seconds=draw(st.integers(1, 10**9)))))
        entries.append(RegistryEntry(
            asset=f"{site}/{line}/{name}", sensor=f"{sensor}{i}", asset_class=draw(_names),
            quantity=draw(st.sampled_from(KNOWN_QUANTITIES)), site=site, line=line,
            valid_from=start, valid_to=end, unit=draw(_text),
            protocol=draw(st.sampled_from([None, "opcua", "modbus", "sparkplug", "daq"])),
            address=draw(_text),
        ))  # fmt: skip
    return sorted(entries, key=lambda e: e.key)


@given(_entries())
def test_any_registry_round_trips_through_both_formats(entries):
    assert parse_registry_csv(registry_csv(entries), source="r.csv") == entries
    assert parse_registry_yaml(registry_yaml(entries), source="r.yaml") == entries


def test_entry_rows_and_back():
    entries = _plant_entries()
    rows = entry_rows(entries)
    assert all(tuple(row) == FIELDS for row in rows)
    assert all(row["valid_from"].tzinfo is not None for row in rows)
    assert entries_from_rows(rows) == entries
    # Spark's collect() gives naive UTC timestamps, and may carry columns beyond FIELDS.
    naive = [
        {**row, "loaded_at": 1, "valid_from": row["valid_from"].replace(tzinfo=None),
         "valid_to": row["valid_to"] and row["valid_to"].replace(tzinfo=None)}
        for row in rows
    ]  # fmt: skip
    assert entries_from_rows(naive) == entries


def test_bad_table_rows_are_named_by_row_number():
    rows = entry_rows([_entry("a"), _entry("b")])
    rows[1] = {**rows[1], "quantity": "presure"}
    with pytest.raises(RegistryFileError) as excinfo:
        entries_from_rows(rows)
    assert _problems(excinfo) == [((2,), "quantity")]
    assert "reference.asset_registry row 2: quantity" in str(excinfo.value)


def test_model_fields_are_the_csv_columns():
    assert tuple(RegistryEntry.model_fields) == FIELDS


# -- the published schema and the example --------------------------------------------------------


def test_the_published_schema_is_up_to_date():
    regenerate = (
        "Regenerate it: python -c 'import json; from plantlake.core.registry_entries import "
        "registry_json_schema as s; print(json.dumps(s(), indent=2))' > "
        "infra/schemas/asset_registry.schema.json"
    )
    assert json.loads(SCHEMA_FILE.read_text()) == registry_json_schema(), regenerate


def test_the_schema_describes_a_registry_file():
    schema = registry_json_schema()
    items = schema["properties"]["entries"]["items"]
    assert set(items["properties"]) == set(FIELDS)
    assert set(items["required"]) == {"asset", "sensor", "asset_class", "quantity", "site",
                                      "line", "valid_from"}  # fmt: skip
    assert items["properties"]["quantity"]["enum"] == list(KNOWN_QUANTITIES)
    assert items["additionalProperties"] is False and schema["additionalProperties"] is False


def test_the_example_file_parses_and_shows_each_protocol_and_a_remount():
    entries = parse_registry_csv(EXAMPLE_FILE.read_text(), source=EXAMPLE_FILE.name)
    assert {e.protocol for e in entries} >= {"opcua", "modbus", "sparkplug"}
    assert all(e.address for e in entries)
    by_signal: dict[tuple[str, str], list[RegistryEntry]] = {}
    for entry in entries:
        by_signal.setdefault((entry.asset, entry.sensor), []).append(entry)
    [remount] = [group for group in by_signal.values() if len(group) == 2]
    before, after = sorted(remount, key=lambda e: e.valid_from)
    assert before.valid_to == after.valid_from and before.asset_class != after.asset_class
    # The example is an excerpt of the simulated plant's own registry.
    assert set(entries) <= set(_plant_entries())


# -- the simulated plant -------------------------------------------------------------------------


def test_the_plant_registry_names_device_units_protocols_and_addresses():
    plant = build_plant(7)
    entries = {(e.asset, e.sensor, e.valid_from): e for e in _plant_entries()}
    registers = plant_register_map(plant)
    for (path, sensor, _), entry in entries.items():
        asset = plant.asset(path)
        if "." in sensor:  # a window feature
            raw, feature = sensor.split(".")
            assert entry.protocol == "daq" and entry.address is None
            expected_unit = asset.sensor(raw).unit if feature in ("rms", "peak") else None
            assert entry.unit == expected_unit
            continue
        device = asset.sensor(sensor)
        assert entry.protocol == asset.protocol and entry.unit == (device.unit or None)
        if asset.protocol == "modbus":
            tag = registers.tag(path, sensor)
            assert entry.address == f"{tag.device_id}:{tag.table}:{tag.address}"
        elif asset.protocol == "sparkplug":
            assert entry.address == f"{asset.site}/{asset.line}-gateway/{asset.name}/{sensor}"
        else:
            assert entry.address == f"ns=2;s={SensorVariable(asset, device).node_key}"


def test_the_remount_splits_the_sensor_and_its_features():
    remount = REMOUNTS[0]
    moved = [e for e in _plant_entries() if e.asset == remount.asset
             and e.sensor.split(".")[0] == remount.sensor]  # fmt: skip
    assert len(moved) == 2 * (1 + len(default_window_features()))
    assert {e.asset_class for e in moved if e.valid_to is not None} == {remount.before}
