"""The test site's devices (tests/site/site.toml): a pymodbus server started from the site's own
settings and hand-written register map, holding fixed plausible values (test support).

Built from the site's files only, never from the simulator, so a test that runs an edge against
it shows the edge needs nothing of the simulated plant. Run by hand, until Ctrl-C:
`python -m tests.site.device_servers [--config tests/site/site.toml] [--port N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import cast

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plantlake.core.config import load_settings
from plantlake.ingest.modbus.register_map import RegisterMap, load_register_map
from plantlake.ingest.modbus.registers import RegisterTag, Table, decode_tag, encode_tag

SITE_DIR = Path(__file__).resolve().parent
SITE_CONFIG = SITE_DIR / "site.toml"
SITE_REGISTRY_CSV = SITE_DIR / "registry.csv"

# What each sensor of the site reads, in the register map's units: a running boiler feed pump.
SITE_VALUES: dict[tuple[str, str], float] = {
    ("acme/boiler-house/feedpump-1", "outlet_pressure"): 212.5,  # psi
    ("acme/boiler-house/feedpump-1", "bearing_temp_de"): 131.4,  # degF
    ("acme/boiler-house/feedpump-1", "drive_amps"): 38.27,  # A
    ("acme/boiler-house/feedpump-1", "run_status"): 1.0,
    ("acme/boiler-house/feedpump-2", "suction_pressure"): 18.6,  # psi
    ("acme/boiler-house/feedpump-2", "casing_temp"): 176.25,  # degF
    ("acme/boiler-house/feedpump-2", "run_status"): 1.0,
}


def served_value(tag: RegisterTag, values: Mapping[tuple[str, str], float] = SITE_VALUES) -> float:
    """What a correct poller reads for `tag`: its value through the register's resolution."""
    return decode_tag(encode_tag(values[(tag.asset, tag.sensor)], tag), tag)


class SiteModbusServer:
    """One Modbus TCP server answering for every unit id of `register_map` (a gateway), holding
    `values`; `async with`, or `start()`/`close()`. `port=0` picks a free port (see `.port`)."""

    def __init__(
        self,
        register_map: RegisterMap,
        values: Mapping[tuple[str, str], float] = SITE_VALUES,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.register_map, self.values, self.host, self.port = register_map, values, host, port
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        by_unit: dict[int, list[RegisterTag]] = defaultdict(list)
        for tag in self.register_map.tags:
            by_unit[tag.device_id].append(tag)
        devices = [
            SimDevice(id=unit, simdata=_tables(tags, self.values)) for unit, tags in by_unit.items()
        ]
        self._server = ModbusTcpServer(devices, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        listener = cast(asyncio.Server, self._server.transport)
        self.port = listener.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            await self._server.shutdown()

    async def __aenter__(self) -> SiteModbusServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


def _tables(
    tags: Iterable[RegisterTag], values: Mapping[tuple[str, str], float]
) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    """Coils, discrete inputs, holding and input registers of one device: each table readable
    over the span its tags cover, gaps read as 0, as on most devices."""
    cells: dict[Table, dict[int, int | bool]] = defaultdict(dict)
    for tag in tags:
        encoded = encode_tag(values[(tag.asset, tag.sensor)], tag)
        cells[tag.table].update(zip(range(tag.address, tag.end), encoded, strict=True))

    def block(table: Table) -> list[SimData]:
        bits = table is Table.COIL
        # pymodbus needs every table non-empty: an unused one gets a cell at the top.
        held = cells.get(table) or {0xFFFF: False if bits else 0}
        low, high = min(held), max(held) + 1
        span = [held.get(address, False if bits else 0) for address in range(low, high)]
        if bits:
            return [SimData(low, values=[bool(v) for v in span], datatype=DataType.BITS)]
        return [SimData(low, count=high - low, values=[int(v) for v in span],
                        datatype=DataType.REGISTERS)]  # fmt: skip

    discrete = [SimData(0xFFF0, values=[False] * 16, datatype=DataType.BITS)]
    return block(Table.COIL), discrete, block(Table.HOLDING), block(Table.INPUT)


async def serve(config: Path = SITE_CONFIG, *, port: int | None = None) -> None:
    """Serve the site's Modbus devices at the settings' modbus.host:port until SIGINT/SIGTERM."""
    settings = load_settings(config)
    if settings.modbus.register_map is None:
        raise SystemExit(f"{config} names no modbus.register_map")
    register_map = load_register_map(settings.modbus.register_map)
    port = settings.modbus.port if port is None else port
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with SiteModbusServer(register_map, host=settings.modbus.host, port=port) as server:
        print(
            f"site Modbus devices {sorted(register_map.devices())} on {server.host}:{server.port}"
        )
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=SITE_CONFIG)
    parser.add_argument("--port", type=int, default=None, help="Default: modbus.port.")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.config, port=args.port))


if __name__ == "__main__":
    main()
