"""`plantlake simulate`: the simulated plant's devices on real protocols, in one process.

OPC-UA and Modbus device servers run on one asyncio loop; each configured Sparkplug edge node
runs in its own thread; a CMMS export of failures and repairs (the ground truth) is written as
the simulated clock passes them.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Sequence

from rich.console import Console

from plantlake.core.config import Settings
from plantlake.simulator.clock import SimClock
from plantlake.simulator.cmms_export import cmms_export_path, write_cmms_export
from plantlake.simulator.launch_faults import launch_faults
from plantlake.simulator.plant import Plant, build_plant

PROTOCOLS = ("opcua", "modbus", "sparkplug")


def _device_servers(settings: Settings, plant: Plant, clock: SimClock, protocols: Sequence[str],
                    stop: threading.Event, errors: list[BaseException]) -> None:  # fmt: skip
    from plantlake.simulator.modbus_server import run_modbus_server
    from plantlake.simulator.opcua_server import OpcUaServerOptions, run_opcua_server

    async def main() -> None:
        done = asyncio.Event()
        tasks = []
        if "opcua" in protocols:
            # History on disk, so a client reconnecting after a simulator restart can backfill.
            options = OpcUaServerOptions(
                history_db=settings.home / "simulator" / "opcua-history.sqlite"
            )
            tasks.append(
                asyncio.create_task(
                    run_opcua_server(settings, plant, clock, stop=done, options=options)
                )
            )
        if "modbus" in protocols:
            tasks.append(
                asyncio.create_task(run_modbus_server(settings.simulator, plant, clock, stop=done))
            )
        while not stop.is_set() and not any(t.done() for t in tasks):
            await asyncio.sleep(0.2)
        done.set()
        for task in tasks:
            await task  # raises a server's failure, e.g. a taken port

    try:
        asyncio.run(main())
    except BaseException as exc:  # reported by the caller, which stops everything
        errors.append(exc)
        stop.set()


def run_simulation(settings: Settings, console: Console, *, protocols: Sequence[str] = PROTOCOLS,
                   stop: threading.Event | None = None, start_ms: int | None = None) -> None:  # fmt: skip
    """Run the simulated plant until `stop` is set (or a device server fails)."""
    from plantlake.simulator.sparkplug_node import run_edge_node

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        # Explicit handlers: a background job may have inherited SIGINT as ignored.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    clock = SimClock(start_ms, speed=settings.simulator.speed)
    plant = build_plant(settings.simulator.seed, start_ms=clock.start_ms)
    errors: list[BaseException] = []
    threads = []
    if {"opcua", "modbus"} & set(protocols):
        threads.append(threading.Thread(target=_device_servers, name="device-servers",
                                        args=(settings, plant, clock, protocols, stop, errors)))  # fmt: skip
    if "sparkplug" in protocols:
        for node in settings.mqtt.edge_nodes:
            threads.append(threading.Thread(
                target=run_edge_node, name=f"sparkplug-{node.edge_node_id}",
                args=(settings, plant, clock, node), kwargs={"stop_event": stop}))  # fmt: skip
    for thread in threads:
        thread.start()
    counts = {p: len(plant.by_protocol(p)) for p in protocols}
    console.print(f"simulating plant seed {plant.seed} at {clock.speed:g}x: "
                  + ", ".join(f"{n} {p} assets" for p, n in counts.items()))  # fmt: skip
    served = {a.path for p in protocols for a in plant.by_protocol(p)}
    faults = launch_faults(plant).describe(served)
    if faults:
        console.print("launch faults for silver's rules to catch (times from the launch): "
                      + "; ".join(faults))  # fmt: skip
    export = cmms_export_path(settings)
    try:
        while not stop.wait(1.0):
            write_cmms_export(plant, clock.now_ms(), export)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        write_cmms_export(plant, clock.now_ms(), export)
    if errors:
        raise errors[0]
