"""Modbus register decoding, scaling, read planning and register-map validation: pure, no sockets."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from plantlake.core.errors import ConfigError
from plantlake.ingest.modbus.register_map import (
    dump_register_map,
    load_register_map,
    parse_register_map,
    plant_register_map,
)
from plantlake.ingest.modbus.registers import (
    ByteOrder,
    PollClass,
    RegisterTag,
    RegisterType,
    Table,
    decode_float32,
    decode_tag,
    encode_float32,
    encode_tag,
    plan_reads,
    scale_registers,
    split_response,
    unscale_value,
)
from plantlake.simulator.plant import build_plant

# 123.456 as an IEEE 754 float32 is 0x42F6E979 (bytes A=42 B=F6 C=E9 D=79).
KNOWN = {
    ByteOrder.ABCD: (0x42F6, 0xE979),
    ByteOrder.CDAB: (0xE979, 0x42F6),
    ByteOrder.BADC: (0xF642, 0x79E9),
    ByteOrder.DCBA: (0x79E9, 0xF642),
}


def tag(address=0, type=RegisterType.FLOAT32, table=Table.HOLDING, device_id=1, **kw):
    kw.setdefault("sensor", f"s{table}{address}")
    return RegisterTag(asset="plant1/line1/a", device_id=device_id, table=table,
                       address=address, type=type, **kw)  # fmt: skip


@pytest.mark.parametrize("order", list(ByteOrder))
def test_float32_known_byte_patterns(order):
    assert encode_float32(123.456, order) == KNOWN[order]
    assert decode_float32(KNOWN[order], order) == pytest.approx(123.456, rel=1e-7)


def test_float32_other_constants():
    assert encode_float32(1.0, "ABCD") == (0x3F80, 0x0000)
    assert encode_float32(-2.5, "CDAB") == (0x0000, 0xC020)
    assert decode_float32((0x0000, 0xC020), "CDAB") == -2.5


def test_float32_agrees_with_pymodbus_for_the_orders_it_knows():
    dt = AsyncModbusTcpClient.DATATYPE.FLOAT32
    convert = AsyncModbusTcpClient.convert_from_registers
    assert convert(list(KNOWN[ByteOrder.ABCD]), dt) == decode_float32(KNOWN["ABCD"], "ABCD")
    little = convert(list(KNOWN[ByteOrder.CDAB]), dt, word_order="little")
    assert little == decode_float32(KNOWN["CDAB"], "CDAB")


@given(
    st.floats(width=32, allow_nan=False, allow_infinity=True),
    st.sampled_from(list(ByteOrder)),
)
def test_float32_round_trip(value, order):
    regs = encode_float32(value, order)
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode_float32(regs, order) == value


@pytest.mark.parametrize("order", list(ByteOrder))
def test_float32_nan_survives(order):
    assert math.isnan(decode_float32(encode_float32(math.nan, order), order))


def test_scaled_uint16_and_int16():
    speed = tag(type=RegisterType.UINT16, table=Table.INPUT, scale=0.1)
    assert scale_registers([14812], speed) == pytest.approx(1481.2)
    temperature = tag(type=RegisterType.INT16, table=Table.INPUT, scale=0.1)
    assert scale_registers([0xFF9C], temperature) == pytest.approx(-10.0)  # raw -100
    level = tag(type=RegisterType.UINT16, table=Table.INPUT, scale=0.01, offset=-40.0)
    assert scale_registers([1000], level) == pytest.approx(-30.0)


def test_integer_sentinels_mean_nan_and_encoding_clamps():
    u = tag(type=RegisterType.UINT16, table=Table.INPUT, scale=0.1)
    i = tag(type=RegisterType.INT16, table=Table.INPUT, scale=0.1)
    assert math.isnan(scale_registers([0xFFFF], u))
    assert math.isnan(scale_registers([0x8000], i))
    assert unscale_value(math.nan, u) == 0xFFFF
    assert unscale_value(math.nan, i) == 0x8000
    assert unscale_value(1e9, u) == 0xFFFE  # clamped below the sentinel
    assert unscale_value(-5.0, u) == 0
    assert unscale_value(-1e9, i) == 0x8001


@given(st.floats(min_value=-3276.0, max_value=3276.0), st.sampled_from([0.1, 0.5, 2.0]))
def test_int16_round_trip_within_half_a_step(value, scale):
    t = tag(type=RegisterType.INT16, table=Table.INPUT, scale=scale, offset=1.5)
    if not -32767 <= (value - 1.5) / scale <= 32767:
        return
    assert abs(decode_tag(encode_tag(value, t), t) - value) <= scale / 2 + 1e-9


def test_float32_tag_applies_scale_and_offset_both_ways():
    t = tag(order=ByteOrder.DCBA, scale=2.0, offset=10.0)
    assert encode_tag(256.912, t) == list(encode_float32(123.456, "DCBA"))
    assert decode_tag(list(KNOWN[ByteOrder.DCBA]), t) == pytest.approx(256.912, rel=1e-7)


def test_coil_tag():
    running = tag(type=RegisterType.BOOL, table=Table.COIL)
    assert encode_tag(1.0, running) == [True]
    assert decode_tag([False], running) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": RegisterType.FLOAT32, "table": Table.COIL},
        {"type": RegisterType.BOOL, "table": Table.HOLDING},
        {"address": 65535},  # a float32 needs two registers
        {"device_id": 0},
        {"scale": 0.0},
    ],
)
def test_impossible_tags_are_refused(kwargs):
    with pytest.raises(ValueError):
        tag(**kwargs)


def test_plan_merges_neighbours_and_splits_back():
    tags = [tag(0), tag(2), tag(4, RegisterType.UINT16, scale=0.5)]
    (request,) = plan_reads(tags)
    assert (request.address, request.count) == (0, 5)
    regs = [*encode_float32(1.5, "ABCD"), *encode_float32(-2.0, "ABCD"), 7]
    values = {t.sensor: v for t, v in split_response(request, regs)}
    assert values == {tags[0].sensor: 1.5, tags[1].sensor: -2.0, tags[2].sensor: 3.5}


def test_plan_respects_the_gap_and_separates_devices_and_tables():
    tags = [tag(0), tag(20), tag(0, device_id=2), tag(0, RegisterType.UINT16, Table.INPUT)]
    assert len(plan_reads(tags, max_gap=8)) == 4
    merged = plan_reads(tags, max_gap=18)
    assert len(merged) == 3
    assert any(r.count == 22 and r.device_id == 1 and r.table is Table.HOLDING for r in merged)


def test_unbatched_plan_reads_each_tag_alone():
    tags = [tag(a) for a in range(0, 20, 2)]
    plan = plan_reads(tags, batched=False)
    assert [(r.address, r.count) for r in plan] == [(a, 2) for a in range(0, 20, 2)]


def test_short_response_is_refused():
    (request,) = plan_reads([tag(0), tag(2)])
    with pytest.raises(ValueError, match="asked for 4"):
        split_response(request, [0, 0, 0])


@st.composite
def tag_sets(draw):
    """Non-overlapping tags over two devices and all three tables."""
    tags = []
    for device_id in (1, 2):
        for table in Table:
            address = draw(st.integers(0, 200))
            for k in range(draw(st.integers(0, 70))):
                if table is Table.COIL:
                    kind = RegisterType.BOOL
                else:
                    kind = draw(st.sampled_from([RegisterType.FLOAT32, RegisterType.UINT16]))
                if address + kind.width > 0x10000:
                    break
                tags.append(tag(address, kind, table, device_id, sensor=f"{table}{k}"))
                address += kind.width + draw(st.integers(0, 12))
    return tags


@given(tag_sets(), st.integers(0, 16))
def test_plan_never_exceeds_the_protocol_limit_and_covers_each_tag_once(tags, max_gap):
    plan = plan_reads(tags, max_gap=max_gap)
    covered = [t for r in plan for t in r.tags]
    assert sorted(covered, key=id) == sorted(tags, key=id)
    for request in plan:
        assert request.count <= (2000 if request.table is Table.COIL else 125)
        for t in request.tags:
            assert (t.device_id, t.table) == (request.device_id, request.table)
            assert request.address <= t.address and t.end <= request.address + request.count


# --- the register map as configuration ---

GOOD_MAP = {
    "devices": [
        {
            "asset": "plant1/line1/press-01",
            "device_id": 1,
            "tags": [
                {"sensor": "hydraulic_pressure", "table": "holding", "address": 0,
                 "type": "float32", "order": "CDAB", "unit": "bar"},
                {"sensor": "bearing_temperature", "table": "input", "address": 10,
                 "type": "int16", "scale": 0.1, "unit": "degC", "poll": "slow"},
                {"sensor": "running", "table": "coil", "address": 0, "type": "bool"},
            ],
        }
    ]
}  # fmt: skip


def with_tag_change(index, **change):
    import copy

    data = copy.deepcopy(GOOD_MAP)
    data["devices"][0]["tags"][index].update(change)
    return data


def test_parse_a_good_map():
    register_map = parse_register_map(GOOD_MAP)
    pressure = register_map.tag("plant1/line1/press-01", "hydraulic_pressure")
    assert pressure.order is ByteOrder.CDAB and pressure.poll is PollClass.FAST
    assert register_map.devices() == {1: "plant1/line1/press-01"}
    assert len(register_map.for_poll(PollClass.SLOW)) == 1


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (with_tag_change(1, type="float"), "tags[1] (bearing_temperature) type"),
        (with_tag_change(2, type="float32"), "tags[2] (running)"),
        (with_tag_change(0, adress=3), "tags[0] (hydraulic_pressure) adress"),
        (with_tag_change(0, order="ABDC"), "tags[0] (hydraulic_pressure) order"),
        (with_tag_change(1, address=1, table="holding"), "bearing_temperature (holding 1)"),
    ],
)
def test_map_errors_name_the_entry(data, expected):
    with pytest.raises(ConfigError) as raised:
        parse_register_map(data, source="site.yaml")
    assert raised.value.code == "config"
    message = str(raised.value)
    assert message.startswith("site.yaml: ")
    assert expected in message
    if "tags[" in expected:
        assert "devices[0] (plant1/line1/press-01)" in message


def test_one_unit_id_per_asset():
    data = {"devices": [GOOD_MAP["devices"][0], {**GOOD_MAP["devices"][0], "asset": "p/l/other"}]}
    with pytest.raises(ConfigError, match="device_id 1 is used by both"):
        parse_register_map(data)


def test_load_names_the_file(tmp_path):
    broken = tmp_path / "map.yaml"
    broken.write_text("devices: [\n")
    with pytest.raises(ConfigError, match="map.yaml is not valid YAML"):
        load_register_map(broken)
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_register_map(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty.yaml"):
        load_register_map(empty)


def test_plant_map_uses_every_order_and_survives_a_yaml_round_trip(tmp_path):
    plant = build_plant(7)
    register_map = plant_register_map(plant)
    modbus_assets = [a.path for a in plant.by_protocol("modbus")]
    assert register_map.devices() == {i + 1: path for i, path in enumerate(modbus_assets)}
    assert {t.order for t in register_map.tags if t.type is RegisterType.FLOAT32} == set(ByteOrder)
    assert {t.type for t in register_map.tags} == set(RegisterType)
    assert all(t.table is Table.COIL for t in register_map.tags if t.sensor == "running")
    for asset in plant.by_protocol("modbus"):
        for sensor in asset.sensors:
            assert register_map.tag(asset.path, sensor.name).unit == sensor.unit
    path = tmp_path / "plant.yaml"
    path.write_text(dump_register_map(register_map))
    assert load_register_map(path) == register_map


def test_readings_are_stamped_with_the_poll_time_and_nan_is_bad():
    from plantlake.core.records import Quality
    from plantlake.ingest.modbus.poller import to_readings

    speed = tag(type=RegisterType.UINT16, table=Table.INPUT, scale=0.1, unit="rpm")
    good, bad = to_readings(
        [(speed, scale_registers([14812], speed)), (speed, scale_registers([0xFFFF], speed))],
        node="127.0.0.1:5020/1",
        sent_ms=1_000,
        received_ms=1_004,
    )
    assert (good.value, good.unit, good.quality) == (pytest.approx(1481.2), "rpm", Quality.GOOD)
    assert (good.event_time_ms, good.receive_time_ms) == (1_000, 1_004)
    assert (good.source_protocol, good.source_node) == ("modbus", "127.0.0.1:5020/1")
    assert (bad.value, bad.quality) == (None, Quality.BAD)
