"""The simulated plant's Modbus TCP devices: one pymodbus server acting as a gateway to one unit id per Modbus asset (simulator, ingest layer).

Registers are refreshed from `value_at` every `update_interval_s` (the devices' scan rate) and
encoded with the same register map the poller reads, so the two agree by construction; the map
can be replaced by a hand-written one to test a map against the simulator.

A dead asset (`asset.dies_at_ms` passed) stops refreshing and answers every read with exception
0x0B, "gateway target device failed to respond" — what a real TCP gateway says for a silent
device on its serial side. We chose that over silence because a unit that never answers makes
pymodbus close the shared connection after a few timeouts, taking the healthy units with it;
the poller still handles plain timeouts, for devices that really go quiet. A unit id with no
asset behind it answers 0x0A, "gateway path unavailable".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import TypeAlias, cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plantlake.core.config import SimulatorSettings
from plantlake.core.errors import SourceError
from plantlake.ingest.modbus.register_map import RegisterMap, plant_register_map
from plantlake.ingest.modbus.registers import RegisterTag, Table, encode_tag
from plantlake.simulator.clock import SimClock
from plantlake.simulator.plant import Plant, value_at

# Write function codes per table; pymodbus's datastore picks the block by function code.
_WRITE_CODE = {Table.HOLDING: 16, Table.INPUT: 4, Table.COIL: 15}

# A device's four tables, as SimDevice takes them: coils, discrete inputs, holding, input.
_Tables: TypeAlias = tuple[list[SimData], list[SimData], list[SimData], list[SimData]]


class PlantModbusServer:
    """A running Modbus TCP server for the plant; use `async with` or `start()`/`close()`.

    `written[(asset, sensor)]` keeps the last `history` (plant time ms, value) pairs the devices
    stored (before encoding), so a test can check a poller read exactly what a device held.
    """

    def __init__(
        self,
        plant: Plant,
        clock: SimClock,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        register_map: RegisterMap | None = None,
        update_interval_s: float = 0.1,
        history: int = 1000,
    ) -> None:
        self.plant = plant
        self.clock = clock
        self.host = host
        self.port = port
        self.register_map = register_map or plant_register_map(plant)
        self.update_interval_s = update_interval_s
        self.written: dict[tuple[str, str], deque[tuple[int, float]]] = defaultdict(
            lambda: deque(maxlen=history)
        )
        self.reads_served: dict[int, int] = defaultdict(int)
        self._server: ModbusTcpServer | None = None
        self._updater: asyncio.Task | None = None

    async def start(self) -> None:
        """Write the first values, listen, and start refreshing; raises SourceError if the port is taken."""
        devices = [self._device(unit, tags) for unit, tags in self._tags_by_unit().items()]
        # Unit id 0 is pymodbus's "any other unit id": readable everywhere, so every read of a
        # unit with no asset behind it reaches the action and gets 0x0A rather than 0x02.
        devices.append(SimDevice(id=0, simdata=_full_range_blocks(), action=_no_path))
        self._server = ModbusTcpServer(devices, address=(self.host, self.port))
        await self.update()
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError as exc:
            raise SourceError(
                f"The simulated Modbus server cannot listen on {self.host}:{self.port}.",
                hint="Is another simulator running? Pick a free port (simulator.modbus_port).",
            ) from exc
        # pymodbus types its transport as a BaseTransport; a TCP listener's is the Server that
        # loop.create_server returned.
        listener = cast(asyncio.Server, self._server.transport)
        self.port = listener.sockets[0].getsockname()[1]
        self._updater = asyncio.create_task(self._refresh_forever(), name="modbus-sim-refresh")

    async def close(self) -> None:
        if self._updater:
            self._updater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._updater
        if self._server:
            await self._server.shutdown()

    async def __aenter__(self) -> PlantModbusServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def update(self) -> None:
        """Store every live asset's current values in its registers and coils."""
        assert self._server is not None
        now = self.clock.now_ms()
        for tag in self.register_map.tags:
            asset = self.plant.asset(tag.asset)
            if self._dead(asset.path, now):
                continue
            value, _quality = value_at(self.plant, asset, asset.sensor(tag.sensor), now)
            await self._server.async_setValues(
                tag.device_id, _WRITE_CODE[tag.table], tag.address, encode_tag(value, tag)
            )
            self.written[(tag.asset, tag.sensor)].append((now, value))

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.update_interval_s)
            await self.update()

    def _dead(self, asset_path: str, now_ms: int) -> bool:
        dies_at = self.plant.asset(asset_path).dies_at_ms
        return dies_at is not None and now_ms >= dies_at

    def _tags_by_unit(self) -> dict[int, list[RegisterTag]]:
        units: dict[int, list[RegisterTag]] = defaultdict(list)
        for tag in self.register_map.tags:
            units[tag.device_id].append(tag)
        return units

    def _device(self, unit: int, tags: list[RegisterTag]) -> SimDevice:
        action = functools.partial(self._on_access, unit, tags[0].asset)
        return SimDevice(id=unit, simdata=_blocks(tags), action=action)

    async def _on_access(
        self, unit: int, asset_path: str, _fc, _start, _address, _count, _registers, set_values
    ) -> ExcCodes | None:
        if set_values is not None:  # our own refresh writes
            return None
        if self._dead(asset_path, self.clock.now_ms()):
            return ExcCodes.GATEWAY_NO_RESPONSE
        self.reads_served[unit] += 1
        return None


async def _no_path(*_args) -> ExcCodes:
    return ExcCodes.GATEWAY_PATH_UNAVIABLE  # sic, pymodbus's spelling


def _full_range_blocks() -> _Tables:
    bits = [_coils(0, 0x10000)]
    regs = [SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS)]
    return bits, list(bits), regs, list(regs)


def _blocks(tags: Iterable[RegisterTag]) -> _Tables:
    """pymodbus's four separate tables (coils, discrete inputs, holding, input) for a device.

    Each table is readable over the whole span its tags cover, gaps included, as on most real
    devices (so batched reads that skip a few registers work); outside it reads fail with
    exception 0x02. A table with no tags gets one register at the top of the address space,
    because pymodbus needs every table non-empty.
    """
    spans: dict[Table, tuple[int, int]] = {}
    for tag in tags:
        low, high = spans.get(tag.table, (tag.address, tag.end))
        spans[tag.table] = (min(low, tag.address), max(high, tag.end))

    def block(table: Table) -> list[SimData]:
        bits = table is Table.COIL
        low, high = spans.get(table, (0xFFF0 if bits else 0xFFFF, 0x10000))
        if bits:
            return [_coils(low, high - low)]
        return [SimData(low, count=high - low, values=0, datatype=DataType.REGISTERS)]

    return block(Table.COIL), [_coils(0xFFF0, 16)], block(Table.HOLDING), block(Table.INPUT)


def _coils(address: int, count: int) -> SimData:
    # Bits go in as one list: pymodbus 3.16 applies `count` twice to BITS blocks when checking.
    return SimData(address, values=[False] * count, datatype=DataType.BITS)


async def run_modbus_server(
    settings: SimulatorSettings,
    plant: Plant,
    clock: SimClock,
    *,
    stop: asyncio.Event,
    port: int | None = None,
    host: str = "127.0.0.1",
    register_map: RegisterMap | None = None,
) -> None:
    """Serve the plant's Modbus assets on `host:port` (default `settings.modbus_port`) until `stop` is set."""
    server = PlantModbusServer(
        plant,
        clock,
        host=host,
        port=settings.modbus_port if port is None else port,
        register_map=register_map,
    )
    async with server:
        await stop.wait()
