"""The Modbus TCP edge poller: batched register reads per device and poll class, into an EdgeSink (ingest layer).

Modbus carries no timestamps, so a reading's `event_time_ms` is the time the poller sent the
read (the value was current at some instant between that and `receive_time_ms`, typically
a few milliseconds later); downstream treats Modbus event times as poll times.

All devices sit behind one TCP endpoint (a gateway or a multi-unit server), polled over one
connection: Modbus TCP is request/response and pymodbus serializes requests on a connection.
A failed read (exception response, timeout, short reply) is counted for its device and becomes
a DeadLetter; the poller carries on with the next read. While the connection is down the
poller skips reads and reconnects with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException

from plantlake.core.clock import now_ms
from plantlake.core.config import ModbusSettings
from plantlake.core.records import DeadLetter, LifecycleEvent, LifecycleKind, Quality, Reading
from plantlake.ingest.edge import EdgeSink
from plantlake.ingest.modbus.register_map import RegisterMap
from plantlake.ingest.modbus.registers import (
    PollClass,
    ReadRequest,
    RegisterTag,
    Table,
    plan_reads,
    split_response,
)

log = logging.getLogger(__name__)

PROTOCOL = "modbus"


@dataclass(frozen=True)
class PollerOptions:
    """How often and how patiently to poll (candidates for a `modbus` settings section)."""

    fast_interval_s: float = 1.0
    slow_interval_s: float = 10.0
    timeout_s: float = 1.0
    reconnect_delay_s: float = 0.5
    reconnect_delay_max_s: float = 30.0
    max_gap: int = 8  # unused registers a batched read may skip over
    batched: bool = True
    stale_after_failures: int = 3  # consecutive failed reads before a device is reported stale

    def __post_init__(self) -> None:
        if min(self.fast_interval_s, self.slow_interval_s, self.timeout_s) <= 0:
            raise ValueError("poll intervals and timeout must be > 0")
        if not 0 < self.reconnect_delay_s <= self.reconnect_delay_max_s:
            raise ValueError("need 0 < reconnect_delay_s <= reconnect_delay_max_s")

    def interval(self, poll: PollClass) -> float:
        return self.fast_interval_s if poll is PollClass.FAST else self.slow_interval_s


@dataclass
class DeviceCounters:
    """What the poller did for one unit id; `registers` counts registers or coils read."""

    requests: int = 0
    registers: int = 0
    errors: int = 0
    readings: int = 0
    consecutive_failures: int = 0
    stale: bool = False


class ModbusPoller:
    """Polls every tag of a register map from one Modbus TCP endpoint; `counters` per unit id."""

    def __init__(
        self,
        settings: ModbusSettings,
        sink: EdgeSink,
        register_map: RegisterMap,
        *,
        options: PollerOptions | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.options = options or PollerOptions()
        self.endpoint = f"{settings.host}:{settings.port}"
        self.sink = sink
        self.clock = clock
        self.assets = register_map.devices()
        self.plans = {
            poll: plan_reads(
                register_map.for_poll(poll),
                max_gap=self.options.max_gap,
                batched=self.options.batched,
            )
            for poll in PollClass
        }
        self.counters = {unit: DeviceCounters() for unit in self.assets}
        self.client = AsyncModbusTcpClient(
            settings.host,
            port=settings.port,
            timeout=self.options.timeout_s,
            retries=0,  # a missed poll is retried by the next one; retries would stall the rest
            # pymodbus's own reconnect covers losses between our checks (0 would switch it off).
            reconnect_delay=self.options.reconnect_delay_s,
            reconnect_delay_max=self.options.reconnect_delay_max_s,
        )
        # pymodbus drops the connection after this many unanswered reads in a row; one silent
        # unit behind a gateway must not cut off the others, so allow a whole pass of them.
        self.client.set_max_no_responses(max(3, sum(len(p) for p in self.plans.values())))
        self._backoff_s = self.options.reconnect_delay_s
        self._next_connect = 0.0
        self._connected_once = False
        self._lost = False
        self._connect_lock = asyncio.Lock()

    def source_node(self, unit: int) -> str:
        return f"{self.endpoint}/{unit}"

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every class at its interval until `stop` is set, then close the connection."""
        try:
            async with asyncio.TaskGroup() as group:
                for poll in PollClass:
                    if self.plans[poll]:
                        group.create_task(self._poll_forever(poll, stop), name=f"modbus-{poll}")
        finally:
            self.client.close()

    async def _poll_forever(self, poll: PollClass, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        interval = self.options.interval(poll)
        next_at = loop.time()
        while not stop.is_set():
            await self.poll(poll)
            next_at += interval
            if next_at < loop.time():  # overran: skip the missed ticks rather than burst
                next_at = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=next_at - loop.time())

    async def poll(self, poll: PollClass) -> int:
        """One pass over a poll class; returns how many readings went to the sink."""
        delivered = 0
        for request in self.plans[poll]:
            if not await self.ensure_connected():
                break
            delivered += await self._read(request)
        return delivered

    async def ensure_connected(self) -> bool:
        """Connect if needed, at most once per backoff period; emits lifecycle events on changes.

        The first connection is a BIRTH of the endpoint, a loss a DEATH, a later connection
        RECONNECTED.
        """
        async with self._connect_lock:  # both poll classes may find the connection down at once
            if self.client.connected:
                return True
            if self._connected_once and not self._lost:
                self._lost = True
                self._lifecycle(LifecycleKind.DEATH, detail="connection lost")
            now = time.monotonic()
            if now < self._next_connect:
                return False
            self.client.close()  # cancels a pending pymodbus reconnect: only one connect runs
            if await self.client.connect():
                kind = LifecycleKind.RECONNECTED if self._connected_once else LifecycleKind.BIRTH
                self._lifecycle(kind, detail="connected")
                self._connected_once, self._lost = True, False
                self._backoff_s = self.options.reconnect_delay_s
                return True
            log.warning("Modbus %s unreachable; retrying in %.1f s", self.endpoint, self._backoff_s)
            self._next_connect = now + self._backoff_s
            self._backoff_s = min(2 * self._backoff_s, self.options.reconnect_delay_max_s)
            return False

    async def _read(self, request: ReadRequest) -> int:
        counters = self.counters[request.device_id]
        counters.requests += 1
        sent_ms = self.clock()
        try:
            read = getattr(self.client, _READ_METHODS[request.table])
            response = await read(request.address, count=request.count, device_id=request.device_id)
        except ModbusException as exc:  # timeout, connection dropped mid-read
            return self._failed(request, f"no response: {exc}")
        received_ms = self.clock()
        if response.isError():
            code = getattr(response, "exception_code", 0)
            return self._failed(request, f"exception response 0x{code:02X} ({_code_name(code)})")
        values = response.bits if request.table is Table.COIL else response.registers
        try:
            decoded = split_response(request, values)
        except ValueError as exc:
            return self._failed(request, f"malformed response: {exc}")
        readings = to_readings(
            decoded, node=self.source_node(request.device_id), sent_ms=sent_ms,
            received_ms=received_ms,
        )  # fmt: skip
        counters.registers += request.count
        counters.readings += len(readings)
        counters.consecutive_failures = 0
        if counters.stale:
            counters.stale = False
            self._lifecycle(LifecycleKind.BIRTH, unit=request.device_id, detail="answering again")
        self.sink.readings(readings)
        return len(readings)

    def _failed(self, request: ReadRequest, reason: str) -> int:
        counters = self.counters[request.device_id]
        counters.errors += 1
        counters.consecutive_failures += 1
        description = {
            "device_id": request.device_id,
            "table": str(request.table),
            "function_code": request.table.function_code,
            "address": request.address,
            "count": request.count,
            "tags": [tag.sensor for tag in request.tags],
        }
        self.sink.dead_letter(
            DeadLetter(
                source_protocol=PROTOCOL,
                source_node=self.source_node(request.device_id),
                reason=f"{request.describe()} ({self.assets[request.device_id]}): {reason}",
                raw=json.dumps(description).encode(),
                receive_time_ms=self.clock(),
                origin=f"{request.table}:{request.address}+{request.count}",
            )
        )
        if (
            not counters.stale
            and counters.consecutive_failures >= self.options.stale_after_failures
        ):
            counters.stale = True
            self._lifecycle(LifecycleKind.STALE, unit=request.device_id, detail=reason)
        return 0

    def _lifecycle(self, kind: LifecycleKind, *, unit: int | None = None, detail: str) -> None:
        now = self.clock()
        self.sink.lifecycle(
            LifecycleEvent(
                kind=kind,
                source_protocol=PROTOCOL,
                source_node=self.endpoint if unit is None else self.source_node(unit),
                event_time_ms=now,
                receive_time_ms=now,
                device=None if unit is None else str(unit),
                asset=None if unit is None else self.assets[unit],
                detail=detail,
            )
        )


def to_readings(
    decoded: Sequence[tuple[RegisterTag, float]], *, node: str, sent_ms: int, received_ms: int
) -> list[Reading]:
    """Canonical readings from decoded tags: Good, or Bad with no value when the device sent NaN.

    The event time is `sent_ms`, the poll time: Modbus values carry no source timestamp.
    """
    return [
        Reading(
            asset=tag.asset,
            sensor=tag.sensor,
            value=value if math.isfinite(value) else None,
            unit=tag.unit,
            quality=Quality.GOOD if math.isfinite(value) else Quality.BAD,
            event_time_ms=sent_ms,
            receive_time_ms=received_ms,
            source_protocol=PROTOCOL,
            source_node=node,
        )
        for tag, value in decoded
    ]


_READ_METHODS = {
    Table.HOLDING: "read_holding_registers",
    Table.INPUT: "read_input_registers",
    Table.COIL: "read_coils",
}


def _code_name(code: int) -> str:
    try:
        return ExcCodes(code).name
    except ValueError:
        return "unknown"


async def run_modbus_poller(
    settings: ModbusSettings,
    sink: EdgeSink,
    register_map: RegisterMap,
    *,
    stop: asyncio.Event,
    options: PollerOptions | None = None,
    clock: Callable[[], int] = now_ms,
) -> ModbusPoller:
    """Poll `settings.host:settings.port` per the register map until `stop` is set.

    Returns the poller, whose `counters` hold per-device requests, registers and errors.
    """
    poller = ModbusPoller(settings, sink, register_map, options=options, clock=clock)
    await poller.run(stop)
    return poller
