"""The edge sources `plantlake ingest <protocol>` can run, each as `source(sink, stop)` (ingest layer)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from plantlake.core.config import Settings
from plantlake.core.errors import ConfigError
from plantlake.ingest.filters import load_filter_config, window_feature_names

SOURCES = ("opcua", "modbus", "sparkplug", "daq")


async def _until(stop: threading.Event) -> asyncio.Event:
    """An asyncio.Event that follows a threading.Event (signals arrive on the main thread)."""
    done = asyncio.Event()

    async def follow() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.2)
        done.set()

    asyncio.get_running_loop().create_task(follow())
    return done


def make_source(settings: Settings, name: str, *, register_map: Path | None = None) -> Callable:
    """The source function for one edge process."""
    if name == "sparkplug":
        from plantlake.ingest.sparkplug.host_client import run_host

        return lambda sink, stop: run_host(settings, sink, stop_event=stop)
    if name == "modbus":
        from plantlake.ingest.modbus.poller import run_modbus_poller
        from plantlake.ingest.modbus.register_map import load_register_map, plant_register_map
        from plantlake.simulator.plant import build_plant

        # Without a map file, poll the simulated plant's devices (the map it serves).
        regs = (
            load_register_map(register_map)
            if register_map
            else plant_register_map(build_plant(settings.simulator.seed))
        )

        async def modbus(sink, stop) -> None:
            await run_modbus_poller(settings.modbus, sink, regs, stop=await _until(stop))

        return lambda sink, stop: asyncio.run(modbus(sink, stop))
    if name == "opcua":
        from plantlake.ingest.opcua.client import run_opcua_client

        async def opcua(sink, stop) -> None:
            await run_opcua_client(settings, sink, stop=await _until(stop))

        return lambda sink, stop: asyncio.run(opcua(sink, stop))
    if name == "daq":
        from plantlake.simulator.clock import SimClock
        from plantlake.simulator.daq import run_daq
        from plantlake.simulator.plant import build_plant

        def daq(sink, stop) -> None:
            clock = SimClock(speed=settings.simulator.speed)
            run_daq(
                build_plant(settings.simulator.seed, start_ms=clock.start_ms),
                clock,
                sink,
                stop=stop,
            )

        return daq
    raise ConfigError(f"Unknown edge source {name!r}; plantlake ingests from {list(SOURCES)}.")


def edge_window_features(settings: Settings) -> tuple[str, ...]:
    """The window feature names the configured edge filters compute (listed in the registry)."""
    return window_feature_names(load_filter_config(settings.edge.filters))
