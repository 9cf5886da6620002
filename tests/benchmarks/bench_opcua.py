"""Benchmark: OPC-UA tag changes per second one edge-client process receives (not a pytest test).

The simulated device server runs in a subprocess (its own core) and updates N tags every
period; this process runs the edge client into a counting sink. Both rates are measured over
the same window and printed with their ratio: 1.00 means the client kept up with every change.

    .venv/bin/python tests/benchmarks/bench_opcua.py --tags 1000 --period-ms 500
    .venv/bin/python tests/benchmarks/bench_opcua.py --tags 3000 --period-ms 100 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import queue
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pydantic import SecretStr

from plantlake.core.config import OpcUaSettings, Settings, SimulatorSettings
from plantlake.ingest.opcua.client import OpcUaClientOptions, OpcUaEdgeClient
from plantlake.simulator.clock import SimClock
from plantlake.simulator.opcua_server import OpcUaDeviceServer, OpcUaServerOptions
from plantlake.simulator.plant import Asset, Plant, build_plant


class _IndexedAssets(tuple):
    """plant.assets with an O(1) `index`: `value_at` looks its asset up with `tuple.index`, a
    scan with dataclass equality that costs ~0.3 ms per value in a 2,000-asset plant and would
    make the device server, not the client, the thing measured here."""

    def index(self, asset, *_):
        return self._positions[id(asset)]


def bench_assets(tags: int) -> tuple[Plant, list[Asset]]:
    """A plant big enough for `tags` OPC-UA variables, and the opcua assets that make them up."""
    lines = max(1, tags // 16 + 1)  # about 17 opcua variables per line of 12 assets
    plant = build_plant(seed=7, lines=lines, assets_per_line=12)
    indexed = _IndexedAssets(plant.assets)
    indexed._positions = {id(asset): i for i, asset in enumerate(plant.assets)}
    plant = dataclasses.replace(plant, assets=indexed)
    assets, count = [], 0
    for asset in plant.by_protocol("opcua"):
        if count >= tags:
            break
        assets.append(asset)
        count += len(asset.sensors)
    return plant, assets


def settings_for(home: Path, port: int, password: str, period_ms: int, security: str) -> Settings:
    return Settings(
        home=home,
        opcua=OpcUaSettings(
            endpoint=f"opc.tcp://127.0.0.1:{port}/plantlake/",
            security=security,
            password=SecretStr(password),
            sampling_interval_ms=period_ms,
        ),
        simulator=SimulatorSettings(opcua_port=port, dev_profile=security == "none"),
    )


async def serve(args: argparse.Namespace) -> None:
    """Subprocess side: run the device server, print cumulative stats every second."""
    settings = settings_for(
        Path(args.home),
        args.port,
        os.environ["BENCH_OPCUA_PASSWORD"],
        args.period_ms,
        args.security,
    )
    plant, assets = bench_assets(args.tags)
    options = OpcUaServerOptions(sample_period_ms=args.period_ms, historize=args.historize)
    server = OpcUaDeviceServer(
        settings, plant, SimClock(plant.start_ms, speed=1.0), options=options, assets=assets
    )
    async with server:
        print(f"READY {len(server.variables)}", flush=True)
        loop = asyncio.get_running_loop()
        stdin_closed = loop.run_in_executor(
            None, sys.stdin.read
        )  # the parent closes stdin to stop us
        while not stdin_closed.done():
            print(
                f"STATS {time.monotonic():.3f} {server.samples_published} {time.process_time():.3f} {server.samples_changed}",
                flush=True,
            )
            await asyncio.sleep(1.0)


class CountingSink:
    def __init__(self) -> None:
        self.readings_count = 0
        self.events = 0

    def readings(self, items) -> None:
        self.readings_count += len(items)

    def lifecycle(self, event) -> None:
        self.events += 1

    def dead_letter(self, item) -> None:
        pass


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.split())


async def measure(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-opcua-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    password = secrets.token_urlsafe(12)
    cmd = [
        sys.executable,
        __file__,
        "--serve",
        "--home",
        str(home),
        "--port",
        str(port),
        "--tags",
        str(args.tags),
        "--period-ms",
        str(args.period_ms),
        "--security",
        args.security,
    ]
    if args.historize:
        cmd.append("--historize")
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BENCH_OPCUA_PASSWORD": password},
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        first = lines.get(timeout=120)
        assert first[0] == "READY", first
        n_tags = int(first[1])
        latest = ["STATS", "0", "0", "0", "0"]

        def server_stats() -> tuple[float, int, float, int]:
            nonlocal latest
            while True:
                try:
                    latest = lines.get_nowait()
                except queue.Empty:
                    return float(latest[1]), int(latest[2]), float(latest[3]), int(latest[4])

        sink = CountingSink()
        settings = settings_for(home, port, password, args.period_ms, args.security)
        client = OpcUaEdgeClient(settings.opcua, settings.pki, sink, options=OpcUaClientOptions())
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        t_connect = time.monotonic()
        while client.received < n_tags:  # subscribed and the first value of every tag is in
            await asyncio.sleep(0.1)
            if task.done():
                task.result()
            if time.monotonic() - t_connect > args.subscribe_timeout:
                raise SystemExit(
                    f"the client could not subscribe to {n_tags} tags within "
                    f"{args.subscribe_timeout:.0f}s: the server is saturated"
                )
        print(
            f"client subscribed to {n_tags} tags in {time.monotonic() - t_connect:.1f}s", flush=True
        )
        await asyncio.sleep(args.warmup)
        await asyncio.sleep(1.1)  # a fresh server stats line
        s0_t, s0_n, s0_cpu, s0_c = server_stats()
        c0_t, c0_n, cpu0 = time.monotonic(), client.received, time.process_time()
        await asyncio.sleep(args.seconds)
        await asyncio.sleep(1.1)
        s1_t, s1_n, s1_cpu, s1_c = server_stats()
        c1_t, c1_n, cpu1 = time.monotonic(), client.received, time.process_time()
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    server_rate = (s1_n - s0_n) / (s1_t - s0_t)
    changed_rate = (s1_c - s0_c) / (s1_t - s0_t)
    client_rate = (c1_n - c0_n) / (c1_t - c0_t)
    target = n_tags * 1000 / args.period_ms
    print(
        f"tags {n_tags}, period {args.period_ms} ms, security {args.security}, historize {args.historize}"
    )
    print(f"  target update rate     {target:10.0f} samples/s")
    print(f"  server update rate     {server_rate:10.0f} samples/s")
    print(f"  ...of which changed    {changed_rate:10.0f} changes/s  (what OPC-UA reports)")
    print(f"  client received        {client_rate:10.0f} changes/s")
    print(f"  client/server ratio    {client_rate / changed_rate:10.2f}  (received / changed)")
    print(f"  server CPU             {100 * (s1_cpu - s0_cpu) / (s1_t - s0_t):10.0f} % of one core")
    print(f"  client CPU             {100 * (cpu1 - cpu0) / (c1_t - c0_t):10.0f} % of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument(
        "--period-ms", type=int, default=500, help="update period of every tag (wall clock)"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--subscribe-timeout", type=float, default=90.0)
    parser.add_argument(
        "--security", default="Basic256Sha256_SignAndEncrypt", help="or: none (dev profile)"
    )
    parser.add_argument(
        "--historize", action="store_true", help="server keeps an in-memory history"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve(args) if args.serve else measure(args))


if __name__ == "__main__":
    main()
