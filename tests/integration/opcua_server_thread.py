"""The simulated OPC-UA device server on an event loop of its own, for tests whose client runs
on another (a subprocess, or the test's own asyncio.run)."""

from __future__ import annotations

import asyncio
import threading

from plantlake.core.config import Settings
from plantlake.simulator.clock import SimClock
from plantlake.simulator.opcua_server import OpcUaDeviceServer, OpcUaServerOptions
from plantlake.simulator.plant import Plant


class OpcUaServerThread:
    """`with OpcUaServerThread(settings, plant, clock) as server:` serves until the block ends."""

    def __init__(self, settings: Settings, plant: Plant, clock: SimClock, *,
                 options: OpcUaServerOptions | None = None, start_timeout_s: float = 60) -> None:  # fmt: skip
        self.server = OpcUaDeviceServer(
            settings, plant, clock, options=options if options is not None else OpcUaServerOptions()
        )
        self._timeout = start_timeout_s
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with self.server:
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def __enter__(self) -> OpcUaDeviceServer:
        self._thread.start()
        assert self._ready.wait(self._timeout), (
            f"the OPC-UA device server did not start within {self._timeout:.0f} s"
        )
        if self._error:
            raise self._error
        return self.server

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
