"""The OPC-UA information model of the plant, both ways: paths, units, EURange, status, readings."""

import math
from datetime import UTC, datetime

import pytest
from asyncua import ua

from plantlake.core import unece
from plantlake.core.records import Quality
from plantlake.ingest.opcua.model import (
    ENGINEERING_UNITS,
    EU_RANGE,
    ROOT,
    UNECE_NAMESPACE_URI,
    SensorRef,
    address_space_items,
    data_value,
    datetime_to_ms,
    eu_information,
    eu_range,
    ms_to_datetime,
    quality_of,
    sensor_ref,
    sensor_variables,
    status_of,
    to_reading,
    unit_from_eu,
)
from plantlake.simulator.plant import build_plant, value_at

PLANT = build_plant(seed=7)
NS = 2


def test_every_unit_a_plant_device_reports_has_a_unece_code():
    units = {sensor.unit for asset in PLANT.assets for sensor in asset.sensors}
    assert all(unece.code_for_unit(unit) for unit in units)


@pytest.mark.parametrize("unit", sorted(unece.PLANT_SPELLINGS.values()))
def test_engineering_units_round_trip_to_the_unit_the_device_reports(unit):
    eu = eu_information(unit)
    assert eu.NamespaceUri == UNECE_NAMESPACE_URI
    assert eu.UnitId == unece.unit_id(unece.code_for_unit(unit))
    assert unit_from_eu(eu) == unit


@pytest.mark.parametrize(
    ("unit", "code", "display_name"),
    # What the simulator published before the UNECE table: codes and symbols must not change.
    [
        ("degC", "CEL", "°C"),
        ("degF", "FAH", "°F"),
        ("K", "KEL", "K"),
        ("bar", "BAR", "bar"),
        ("psi", "PS", "lbf/in²"),
        ("A", "AMP", "A"),
        ("mm/s", "C16", "mm/s"),
        ("m3/h", "MQH", "m³/h"),
        ("rpm", "RPM", "r/min"),
        ("", "C62", "1"),
    ],
)
def test_plant_units_publish_the_same_unece_codes(unit, code, display_name):
    eu = eu_information(unit)
    assert eu.UnitId == unece.unit_id(code)
    assert eu.DisplayName.Text == display_name


def test_units_spelt_as_a_unece_symbol_publish_its_code():
    eu = eu_information("kPa")
    assert eu.UnitId == unece.unit_id("KPA")
    assert unit_from_eu(eu) == "kPa"


def test_a_unece_code_without_a_pint_unit_comes_back_marked_for_quarantine():
    # KTN is a kilotonne, written "kt": pint would read the display name as a knot, a speed.
    eu = ua.EUInformation(
        NamespaceUri=UNECE_NAMESPACE_URI,
        UnitId=unece.unit_id("KTN"),
        DisplayName=ua.LocalizedText("kt"),
    )
    assert unit_from_eu(eu) == "UNECE:KTN"
    assert unece.unmapped_code(unit_from_eu(eu)) == "KTN"


def test_a_unit_id_outside_the_table_keeps_its_display_name():
    eu = ua.EUInformation(
        NamespaceUri=UNECE_NAMESPACE_URI,
        UnitId=unece.unit_id("KTM"),  # a later OPC UA code, not in the shipped table
        DisplayName=ua.LocalizedText("km"),
    )
    assert unit_from_eu(eu) == "km"


def test_engineering_units_use_the_unece_symbol_as_display_name():
    assert eu_information("degF").DisplayName.Text == "°F"
    assert eu_information("psi").Description.Text == "pound-force per square inch"


def test_unknown_units_keep_their_name_without_a_code():
    eu = eu_information("furlong/fortnight")
    assert eu.UnitId == -1
    assert unit_from_eu(eu) == "furlong/fortnight"


def test_foreign_engineering_units_fall_back_to_their_display_name():
    eu = ua.EUInformation(
        NamespaceUri="urn:vendor:units", UnitId=4408652, DisplayName=ua.LocalizedText("degC")
    )
    assert unit_from_eu(eu) == "degC"
    assert unit_from_eu(None) is None


@pytest.mark.parametrize("asset", PLANT.assets, ids=lambda a: a.path)
def test_eu_range_holds_the_normal_signal_and_excludes_spikes(asset):
    for sensor in asset.sensors:
        low, high = eu_range(sensor)
        assert low < high
        value, _ = value_at(PLANT, asset, sensor, PLANT.start_ms + 123_000)
        assert low <= value <= high, sensor.name
        if sensor.spike_value is not None:
            assert not low <= sensor.spike_value <= high


def test_a_state_has_the_range_zero_to_one():
    press = next(a for a in PLANT.assets if a.kind == "press")
    assert eu_range(press.sensor("running")) == (0.0, 1.0)


def test_browse_paths_map_back_to_asset_sensor_and_unit():
    for var in sensor_variables(PLANT.by_protocol("opcua")):
        ref = sensor_ref(var.browse_path, eu_information(var.sensor.unit))
        assert ref == SensorRef(asset=var.asset.path, sensor=var.sensor.name, unit=var.sensor.unit)
        assert var.browse_path[0] == ROOT


@pytest.mark.parametrize(
    "path",
    [
        ("Plant", "plant1", "line1", "pump-02"),
        ("Server", "plant1", "line1", "pump-02", "flow"),
        ("Plant", "plant1", "line1", "pump-02", "flow", ENGINEERING_UNITS),
        ("Plant", "", "l", "a", "s"),
    ],
)
def test_other_paths_are_not_sensors(path):
    with pytest.raises(ValueError, match="not a sensor path"):
        sensor_ref(path, None)


def _items():
    return address_space_items(PLANT.by_protocol("opcua"), NS, sampling_ms=500.0)


def test_address_space_lists_parents_before_children_with_unique_ids():
    known = {ua.NodeId(ua.ObjectIds.ObjectsFolder)}
    for item in _items():
        assert item.ParentNodeId in known, item.BrowseName
        assert item.RequestedNewNodeId not in known
        known.add(item.RequestedNewNodeId)


def test_address_space_has_the_plant_hierarchy_down_to_each_asset():
    by_id = {item.RequestedNewNodeId: item for item in _items()}
    for asset in PLANT.by_protocol("opcua"):
        node = by_id[ua.NodeId(asset.path, NS)]
        names = []
        while node is not None:
            names.append(node.BrowseName.Name)
            node = by_id.get(node.ParentNodeId)
        assert names[::-1] == [ROOT, asset.site, asset.line, asset.name]


def test_each_sensor_is_a_historized_analog_item_with_units_and_range():
    items = _items()
    by_id = {item.RequestedNewNodeId: item for item in items}
    children = {}
    for item in items:
        children.setdefault(item.ParentNodeId, {})[item.BrowseName.Name] = item
    variables = sensor_variables(PLANT.by_protocol("opcua"))
    assert len(
        [i for i in items if i.TypeDefinition == ua.NodeId(ua.ObjectIds.AnalogItemType)]
    ) == len(variables)
    for var in variables:
        item = by_id[var.node_id(NS)]
        attrs = item.NodeAttributes
        assert item.ParentNodeId == ua.NodeId(var.asset.path, NS)
        assert item.ReferenceTypeId == ua.NodeId(ua.ObjectIds.HasComponent)
        assert attrs.DataType == ua.NodeId(ua.ObjectIds.Double)
        assert attrs.Historizing
        assert attrs.AccessLevel & ua.AccessLevel.HistoryRead.mask
        assert attrs.MinimumSamplingInterval == 500.0
        props = children[var.node_id(NS)]
        eu = props[ENGINEERING_UNITS]
        assert eu.ReferenceTypeId == ua.NodeId(ua.ObjectIds.HasProperty)
        assert unit_from_eu(eu.NodeAttributes.Value.Value) == var.sensor.unit
        rng = props[EU_RANGE].NodeAttributes.Value.Value
        assert (rng.Low, rng.High) == eu_range(var.sensor)


def test_timestamps_convert_exactly_at_millisecond_precision():
    ms = 1_767_225_600_123
    assert datetime_to_ms(ms_to_datetime(ms)) == ms
    assert ms_to_datetime(ms).tzinfo is not None
    assert datetime_to_ms(datetime(2026, 1, 1, 0, 0, 0, 123000)) == ms  # naive means UTC
    assert ms_to_datetime(ms) == datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "quality"),
    [
        (ua.StatusCodes.Good, Quality.GOOD),
        (ua.StatusCodes.GoodClamped, Quality.GOOD),
        (ua.StatusCodes.Uncertain, Quality.UNCERTAIN),
        (ua.StatusCodes.UncertainLastUsableValue, Quality.UNCERTAIN),
        (ua.StatusCodes.Bad, Quality.BAD),
        (ua.StatusCodes.BadSensorFailure, Quality.BAD),
        (ua.StatusCodes.BadCommunicationError, Quality.BAD),
    ],
)
def test_quality_follows_the_status_code_severity(code, quality):
    assert quality_of(ua.StatusCode(code)) == quality
    assert quality_of(code) == quality


@pytest.mark.parametrize("quality", list(Quality))
def test_status_and_quality_round_trip(quality):
    assert quality_of(status_of(quality)) == quality


def test_a_good_data_value_becomes_a_reading_with_the_source_timestamp():
    ref = SensorRef("plant1/line2/pump-08", "discharge_pressure", "psi")
    dv = data_value(87.5, Quality.GOOD, source_ms=1_767_225_601_000, server_ms=1_767_225_601_020)
    reading = to_reading(
        ref,
        dv,
        receive_time_ms=1_767_225_601_050,
        source_node="opc.tcp://127.0.0.1:4840/plantlake/",
    )
    assert (reading.asset, reading.sensor, reading.unit) == (
        "plant1/line2/pump-08",
        "discharge_pressure",
        "psi",
    )
    assert (reading.value, reading.quality) == (87.5, Quality.GOOD)
    assert (reading.event_time_ms, reading.receive_time_ms) == (
        1_767_225_601_000,
        1_767_225_601_050,
    )
    assert (reading.source_protocol, reading.source_node) == (
        "opcua",
        "opc.tcp://127.0.0.1:4840/plantlake/",
    )


def test_a_bad_or_nan_value_becomes_none_with_its_quality():
    ref = SensorRef("a/b/c", "flow", "m3/h")
    nulled = ua.DataValue(
        ua.Variant(None, ua.VariantType.Null),
        StatusCode=status_of(Quality.BAD),
        SourceTimestamp=ms_to_datetime(5_000),
    )
    reading = to_reading(ref, nulled, receive_time_ms=6_000, source_node="x")
    assert (reading.value, reading.quality, reading.event_time_ms) == (None, Quality.BAD, 5_000)
    nan = to_reading(
        ref,
        data_value(math.nan, Quality.BAD, source_ms=5_000, server_ms=5_000),
        receive_time_ms=6_000,
        source_node="x",
    )
    assert nan.value is None


def test_a_value_without_timestamps_is_stamped_on_receipt():
    dv = ua.DataValue(ua.Variant(1.0, ua.VariantType.Double))
    reading = to_reading(SensorRef("a/b/c", "s", None), dv, receive_time_ms=42, source_node="x")
    assert reading.event_time_ms == 42
