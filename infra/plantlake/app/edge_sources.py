"""The edge sources `plantlake ingest <protocol>` can run, each as `source(sink, stop)` (ingest layer)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from plantlake.core.config import Settings
from plantlake.core.errors import ConfigError
from plantlake.ingest.filters import load_filter_config, window_feature_names

if TYPE_CHECKING:
    from plantlake.ingest.modbus.register_map import RegisterMap

SOURCES = ("opcua", "modbus", "sparkplug", "daq")
# In the repository; shipped beside the systemd units (infra/systemd/README.md).
REGISTER_MAP_TEMPLATE = "infra/site/modbus-register-map.template.yaml"


async def _until(stop: threading.Event) -> asyncio.Event:
    """An asyncio.Event that follows a threading.Event (signals arrive on the main thread)."""
    done = asyncio.Event()

    async def follow() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.2)
        done.set()

    asyncio.get_running_loop().create_task(follow())
    return done


def make_source(
    settings: Settings, name: str, *, register_map: Path | None = None, site: bool = False
) -> Callable:
    """The source function for one edge process.

    `register_map` overrides `settings.modbus.register_map`. `site` (a settings file was named):
    the edge reads only the devices the settings describe and never imports the simulator, so a
    Modbus edge without a register map and the DAQ edge are ConfigErrors instead of the
    simulated plant's stand-ins.
    """
    if name == "sparkplug":
        from plantlake.ingest.sparkplug.host_client import run_host

        return lambda sink, stop: run_host(settings, sink, stop_event=stop)
    if name == "modbus":
        from plantlake.ingest.modbus.poller import run_modbus_poller

        regs = _register_map(settings, register_map, site=site)

        async def modbus(sink, stop) -> None:
            await run_modbus_poller(settings.modbus, sink, regs, stop=await _until(stop))

        return lambda sink, stop: asyncio.run(modbus(sink, stop))
    if name == "opcua":
        from plantlake.ingest.opcua.client import run_opcua_client

        async def opcua(sink, stop) -> None:
            await run_opcua_client(settings, sink, stop=await _until(stop))

        return lambda sink, stop: asyncio.run(opcua(sink, stop))
    if name == "daq":
        if site:
            raise ConfigError(
                "`plantlake ingest daq` reads the simulated plant's vibration waveforms; a site's "
                "DAQ hardware is site-specific and plantlake ships no driver for it.",
                hint="Run it without --config for the simulated plant; at a site, send vibration "
                "through OPC-UA, Modbus or Sparkplug, or write a source(sink, stop) for your DAQ.",
            )
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


def _register_map(settings: Settings, explicit: Path | None, *, site: bool) -> RegisterMap:
    """The map named (option, then settings); else, outside a site, the simulated plant's."""
    from plantlake.ingest.modbus.register_map import load_register_map, plant_register_map

    path = explicit or settings.modbus.register_map
    if path is not None:
        return load_register_map(path)
    if site:
        # A Modbus device cannot be browsed: which register holds what is only in its manual.
        raise ConfigError(
            f"The Modbus edge for {settings.modbus.host}:{settings.modbus.port} has no register "
            "map, and Modbus devices cannot be discovered.",
            hint=f"Copy {REGISTER_MAP_TEMPLATE}, describe your devices' registers in it, and set "
            '`register_map = "FILE"` under [modbus] in the settings file (relative to it), '
            "or pass --register-map FILE.",
        )
    from plantlake.simulator.plant import build_plant

    return plant_register_map(build_plant(settings.simulator.seed))


def edge_window_features(settings: Settings) -> tuple[str, ...]:
    """The window feature names the configured edge filters compute (listed in the registry)."""
    return window_feature_names(load_filter_config(settings.edge.filters))
