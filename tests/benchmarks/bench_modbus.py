"""Benchmark: Modbus poller throughput against the simulator, batched reads vs one read per tag.

Run as a script (pytest does not collect it):

    .venv/bin/python tests/benchmarks/bench_modbus.py [--seconds 3] [--tags-per-device 60]

The simulator runs in a child process on a free loopback port; the poller polls back to back
(no interval) for the given time, once with batched reads and once with one read per tag, over
the same register map: the simulated plant's Modbus assets, each given `--tags-per-device`
float32 holding registers (real PLCs expose dozens to hundreds of tags per unit).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import time
from collections.abc import Sequence

from plantlake.core.config import ModbusSettings
from plantlake.core.records import DeadLetter, LifecycleEvent, Reading
from plantlake.ingest.modbus.poller import ModbusPoller, PollerOptions
from plantlake.ingest.modbus.register_map import RegisterMap, plant_register_map
from plantlake.ingest.modbus.registers import PollClass, RegisterType
from plantlake.simulator.clock import SimClock
from plantlake.simulator.plant import build_plant


def dense_map(tags_per_device: int) -> RegisterMap:
    """The plant map with each device's first float32 tag repeated over consecutive registers."""
    base = plant_register_map(build_plant(7))
    tags = []
    for unit in base.devices():
        first = next(t for t in base.tags if t.device_id == unit and t.type is RegisterType.FLOAT32)
        tags += [
            dataclasses.replace(first, address=2 * k, poll=PollClass.FAST)
            for k in range(tags_per_device)
        ]
    return RegisterMap(tuple(tags))


class CountingSink:
    def __init__(self) -> None:
        self.readings_count = 0
        self.dead = 0

    def readings(self, items: Sequence[Reading]) -> None:
        self.readings_count += len(items)

    def lifecycle(self, event: LifecycleEvent) -> None:
        pass

    def dead_letter(self, item: DeadLetter) -> None:
        self.dead += 1


def serve(tags_per_device: int, ports: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    from plantlake.simulator.modbus_server import PlantModbusServer

    async def main() -> None:
        plant = build_plant(7)
        server = PlantModbusServer(plant, SimClock(), register_map=dense_map(tags_per_device))
        async with server:
            ports.put(server.port)
            while not stop.is_set():
                await asyncio.sleep(0.1)

    asyncio.run(main())


async def measure(port: int, register_map: RegisterMap, *, batched: bool, seconds: float) -> dict:
    sink = CountingSink()
    options = PollerOptions(batched=batched, timeout_s=2.0)
    poller = ModbusPoller(ModbusSettings(port=port), sink, register_map, options=options)
    await poller.ensure_connected()
    await poller.poll(PollClass.FAST)  # warm up
    before = [dataclasses.replace(c) for c in poller.counters.values()]
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await poller.poll(PollClass.FAST)
    elapsed = time.perf_counter() - start
    poller.client.close()
    after = list(poller.counters.values())
    requests = sum(a.requests - b.requests for a, b in zip(after, before, strict=True))
    registers = sum(a.registers - b.registers for a, b in zip(after, before, strict=True))
    readings = sum(a.readings - b.readings for a, b in zip(after, before, strict=True))
    return {
        "mode": "batched" if batched else "one read per tag",
        "reads per pass": len(poller.plans[PollClass.FAST]),
        "requests/s": requests / elapsed,
        "registers/s": registers / elapsed,
        "readings/s": readings / elapsed,
        "errors": sink.dead,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tags-per-device", type=int, default=60)
    args = parser.parse_args()

    register_map = dense_map(args.tags_per_device)
    context = multiprocessing.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    child = context.Process(target=serve, args=(args.tags_per_device, ports, stop), daemon=True)
    child.start()
    try:
        port = ports.get(timeout=60)
        results = [
            asyncio.run(measure(port, register_map, batched=batched, seconds=args.seconds))
            for batched in (True, False)
        ]
    finally:
        stop.set()
        child.join(timeout=10)
    devices = len(register_map.devices())
    print(f"{devices} devices x {args.tags_per_device} float32 tags, {args.seconds:.0f} s each")
    print(f"{'mode':<18}{'reads/pass':>11}{'requests/s':>12}{'registers/s':>13}{'readings/s':>12}")
    for r in results:
        print(f"{r['mode']:<18}{r['reads per pass']:>11}{r['requests/s']:>12.0f}"
              f"{r['registers/s']:>13.0f}{r['readings/s']:>12.0f}")  # fmt: skip
        if r["errors"]:
            print(f"  ({r['errors']} failed reads)")
    batched, single = results
    print(f"batched / one-per-tag: registers/s x{batched['registers/s'] / single['registers/s']:.1f}, "
          f"requests/s x{batched['requests/s'] / single['requests/s']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
