"""The Modbus edge poller against the simulated plant's real pymodbus server on a loopback port."""

import asyncio
import dataclasses
import json
import socket
import time

import pytest
import yaml

from plantlake.core.config import ModbusSettings
from plantlake.core.records import LifecycleKind, Quality
from plantlake.ingest.edge import MemorySink
from plantlake.ingest.modbus.poller import ModbusPoller, PollerOptions
from plantlake.ingest.modbus.register_map import RegisterMap, parse_register_map
from plantlake.ingest.modbus.registers import RegisterTag, decode_tag, encode_tag
from plantlake.simulator.clock import SimClock
from plantlake.simulator.modbus_server import PlantModbusServer
from plantlake.simulator.plant import build_plant

pytestmark = pytest.mark.integration

FAST = PollerOptions(fast_interval_s=0.2, slow_interval_s=0.5, timeout_s=1.0)
UPDATE_S = 0.05

# The simulated plant's map written out by hand from its documented layout (not generated), so
# a generator that drifts from what we promise shows up as wrong values.
HAND_WRITTEN_MAP = """
devices:
  - asset: plant1/line1/press-01
    device_id: 1
    tags:
      - {sensor: hydraulic_pressure, table: holding, address: 0, type: float32, order: ABCD, unit: bar}
      - {sensor: bearing_temperature, table: input, address: 10, type: int16, scale: 0.1, unit: degC, poll: slow}
      - {sensor: running, table: coil, address: 0, type: bool, unit: ""}
      - {sensor: not_there, table: holding, address: 900, type: float32}
  - asset: plant1/line1/press-04
    device_id: 2
    tags:
      - {sensor: hydraulic_pressure, table: holding, address: 0, type: float32, order: CDAB, unit: psi}
      - {sensor: bearing_temperature, table: input, address: 10, type: int16, scale: 0.1, unit: degC, poll: slow}
      - {sensor: running, table: coil, address: 0, type: bool, unit: ""}
  - asset: plant1/line2/motor-09
    device_id: 3
    tags:
      - {sensor: motor_current, table: holding, address: 0, type: float32, order: BADC, unit: A}
      - {sensor: vibration, table: holding, address: 2, type: float32, order: BADC, unit: mm/s}
      - {sensor: speed, table: input, address: 0, type: uint16, scale: 0.1, unit: rpm}
      - {sensor: bearing_temperature, table: input, address: 10, type: int16, scale: 0.1, unit: K, poll: slow}
  - asset: plant1/line2/motor-12
    device_id: 4
    tags:
      - {sensor: motor_current, table: holding, address: 0, type: float32, order: DCBA, unit: A}
      - {sensor: vibration, table: holding, address: 2, type: float32, order: DCBA, unit: mm/s}
      - {sensor: speed, table: input, address: 0, type: uint16, scale: 0.1, unit: rpm}
      - {sensor: bearing_temperature, table: input, address: 10, type: int16, scale: 0.1, unit: K, poll: slow}
  - asset: plant1/line9/ghost
    device_id: 9
    tags:
      - {sensor: flow, table: holding, address: 0, type: float32}
"""


async def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def assert_read_what_the_device_held(server, sink, register_map: RegisterMap, units) -> None:
    """Every reading of these units is exactly a value the device stored shortly before the poll."""
    for reading in sink.all_readings:
        tag = register_map.tag(reading.asset, reading.sensor)
        if tag.device_id not in units:
            continue
        served = server.register_map.tag(reading.asset, reading.sensor)
        asset = server.plant.asset(reading.asset)
        assert reading.unit == asset.sensor(reading.sensor).unit
        assert reading.source_protocol == "modbus"
        assert reading.source_node == f"127.0.0.1:{server.port}/{tag.device_id}"
        assert reading.event_time_ms <= reading.receive_time_ms
        assert reading.quality is Quality.GOOD
        # The value the device held, as precise as its register type allows (float32 rounding,
        # 0.1 steps), among those it held up to the moment the reply came back (plant and wall
        # clock agree here). A poller map with the wrong order or scale cannot match.
        held = [
            (t_ms, decode_tag(encode_tag(value, served), served))
            for t_ms, value in server.written[(reading.asset, reading.sensor)]
            if t_ms <= reading.receive_time_ms + 50
        ]
        matches = [t_ms for t_ms, value in held if value == reading.value]
        assert matches, (tag, reading.value, held[-3:])
        # Fresh: the device stored it at most a refresh period (plus scheduling slack) before
        # the read went out.
        assert max(matches) >= reading.event_time_ms - UPDATE_S * 1000 - 1000


def test_every_modbus_asset_arrives_with_its_scaling_order_and_unit():
    async def scenario():
        plant = build_plant(7)
        async with PlantModbusServer(plant, SimClock(), update_interval_s=UPDATE_S) as server:
            sink = MemorySink()
            register_map = server.register_map
            poller = ModbusPoller(
                ModbusSettings(port=server.port), sink, register_map, options=FAST
            )
            stop = asyncio.Event()
            task = asyncio.create_task(poller.run(stop))

            def seen(tag: RegisterTag) -> int:
                return sum(
                    r.asset == tag.asset and r.sensor == tag.sensor for r in sink.all_readings
                )

            try:
                await wait_for(lambda: all(seen(t) >= 2 for t in register_map.tags), 20,
                               "two readings of every tag")  # fmt: skip
            finally:
                stop.set()
                await task
            return server, sink, poller

    server, sink, poller = asyncio.run(scenario())
    register_map = server.register_map
    assert_read_what_the_device_held(server, sink, register_map, units={1, 2, 3, 4})
    assert not sink.dead
    # Batched: per pass a motor needs 3 reads (holding 0+4, input 0+1, input 10+1) for 4 tags.
    motor = poller.counters[3]
    assert motor.errors == 0 and motor.readings > motor.requests
    assert [e.kind for e in sink.events] == [LifecycleKind.BIRTH]


def test_bad_address_and_dead_device_become_dead_letters_while_others_flow():
    async def scenario():
        clock = SimClock()
        dies_at = clock.start_ms + 1000
        plant = build_plant(7)
        plant = dataclasses.replace(
            plant,
            assets=tuple(
                dataclasses.replace(a, dies_at_ms=dies_at) if a.name == "motor-12" else a
                for a in plant.assets
            ),
        )
        register_map = parse_register_map(yaml.safe_load(HAND_WRITTEN_MAP), source="hand")
        async with PlantModbusServer(plant, clock, update_interval_s=UPDATE_S) as server:
            sink = MemorySink()
            poller = ModbusPoller(
                ModbusSettings(port=server.port), sink, register_map, options=FAST
            )
            stop = asyncio.Event()
            task = asyncio.create_task(poller.run(stop))

            def flowing_after_death(unit: int) -> bool:
                node = f"127.0.0.1:{server.port}/{unit}"
                return any(
                    r.source_node == node and r.event_time_ms > dies_at + 500
                    for r in sink.all_readings
                )

            try:
                await wait_for(
                    lambda: (
                        poller.counters[4].stale and all(flowing_after_death(u) for u in (1, 2, 3))
                    ),
                    20,
                    "unit 4 stale while units 1-3 keep flowing",
                )
            finally:
                stop.set()
                await task
            return server, sink, poller, register_map, dies_at

    server, sink, poller, register_map, dies_at = asyncio.run(scenario())
    counters = poller.counters
    reasons = {unit: [d.reason for d in sink.dead if d.source_node.endswith(f"/{unit}")]
               for unit in counters}  # fmt: skip

    # A register the device does not have: exception 0x02 on that read only.
    assert reasons[1] and all("0x02" in r and "holding 900+2" in r for r in reasons[1])
    missing = next(d for d in sink.dead if d.source_node.endswith("/1"))
    assert json.loads(missing.raw)["address"] == 900
    assert missing.origin == "holding:900+2"
    assert counters[1].errors == len(reasons[1]) and counters[1].readings > 0

    # The dead motor: readings stop, every later read is a 0x0B dead letter, and it goes stale.
    assert reasons[4] and all("0x0B" in r for r in reasons[4])
    assert counters[4].errors == len(reasons[4]) >= FAST.stale_after_failures
    last = max(r.event_time_ms for r in sink.all_readings if r.asset.endswith("motor-12"))
    assert last < dies_at + 250
    stale = [e for e in sink.events if e.kind is LifecycleKind.STALE]
    # Unit 1 fails one read per pass but answers the others, so it never goes stale.
    assert {e.asset for e in stale} == {"plant1/line2/motor-12", "plant1/line9/ghost"}

    # A unit id with no device behind the gateway: 0x0A, and it never produced a reading.
    assert reasons[9] and all("0x0A" in r for r in reasons[9])
    assert counters[9].readings == 0

    # The healthy units never failed, and what they delivered decodes under the hand-written map.
    assert counters[2].errors == counters[3].errors == 0
    assert_read_what_the_device_held(server, sink, register_map, units={1, 2, 3})


def test_poller_reconnects_after_the_server_restarts():
    async def scenario():
        plant = build_plant(7)
        clock = SimClock()
        server = PlantModbusServer(plant, clock, update_interval_s=UPDATE_S)
        await server.start()
        port = server.port
        sink = MemorySink()
        options = dataclasses.replace(FAST, reconnect_delay_s=0.2, reconnect_delay_max_s=0.4)
        poller = ModbusPoller(ModbusSettings(port=port), sink, server.register_map, options=options)
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        try:
            await wait_for(lambda: sink.all_readings, 10, "first readings")
            await server.close()
            await wait_for(lambda: any(e.kind is LifecycleKind.DEATH for e in sink.events), 10,
                           "the poller to notice the lost connection")  # fmt: skip
            lost_at = len(sink.all_readings)
            server = PlantModbusServer(plant, clock, port=port, update_interval_s=UPDATE_S)
            await server.start()
            await wait_for(lambda: len(sink.all_readings) > lost_at + 10, 15, "readings again")
        finally:
            stop.set()
            await task
            await server.close()
        return sink

    sink = asyncio.run(scenario())
    kinds = [e.kind for e in sink.events]
    assert kinds[0] is LifecycleKind.BIRTH
    assert LifecycleKind.DEATH in kinds
    assert kinds[-1] is LifecycleKind.RECONNECTED


def test_entry_points_serve_and_poll_until_stopped():
    from plantlake.core.config import SimulatorSettings
    from plantlake.ingest.modbus.poller import run_modbus_poller
    from plantlake.ingest.modbus.register_map import plant_register_map
    from plantlake.simulator.modbus_server import run_modbus_server

    with socket.socket() as probe:  # a free loopback port for the server's fixed-port entry point
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario():
        plant = build_plant(7)
        register_map = plant_register_map(plant)
        sink = MemorySink()
        stop = asyncio.Event()
        server = asyncio.create_task(
            run_modbus_server(SimulatorSettings(modbus_port=port), plant, SimClock(), stop=stop)
        )
        poller = asyncio.create_task(
            run_modbus_poller(
                ModbusSettings(port=port), sink, register_map, stop=stop, options=FAST
            )
        )
        try:
            await wait_for(
                lambda: len(sink.all_readings) >= 20, 15, "readings via the entry points"
            )
        finally:
            stop.set()
        await asyncio.wait_for(server, 5)
        return await asyncio.wait_for(poller, 5), sink

    poller, sink = asyncio.run(scenario())
    assert {r.asset for r in sink.all_readings} == set(poller.assets.values())
    assert sum(c.requests for c in poller.counters.values()) >= 8
    assert all(c.errors == 0 for c in poller.counters.values())


def test_a_silent_endpoint_times_out_into_dead_letters_and_the_poller_keeps_going():
    async def scenario():
        async def swallow(reader, writer):  # accepts requests, never answers
            while await reader.read(1024):
                pass
            writer.close()

        silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        register_map = parse_register_map(yaml.safe_load(HAND_WRITTEN_MAP), source="hand")
        sink = MemorySink()
        options = dataclasses.replace(FAST, fast_interval_s=0.05, timeout_s=0.1)
        poller = ModbusPoller(ModbusSettings(port=port), sink, register_map, options=options)
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        try:
            await wait_for(lambda: all(c.errors >= 1 for c in poller.counters.values()), 15,
                           "timeouts on every unit")  # fmt: skip
        finally:
            stop.set()
            await task
            silent.close()
        return poller, sink

    poller, sink = asyncio.run(scenario())
    assert not sink.all_readings
    assert sink.dead and all("no response" in d.reason for d in sink.dead)
    assert sum(c.errors for c in poller.counters.values()) == len(sink.dead)
    assert all(c.stale for c in poller.counters.values() if c.errors >= 3)
    assert poller.counters[1].errors >= 2  # a timed-out unit is polled again on the next pass
