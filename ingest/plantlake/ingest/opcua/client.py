"""The OPC-UA edge client: browse the plant, subscribe, backfill gaps from history (ingest, I/O adapter).

One session at a time: connect (Basic256Sha256 SignAndEncrypt with a client certificate made on
first use, plus the user login), browse Objects/Plant for sensor variables, subscribe to data
changes, and hand every change to the `EdgeSink` as a `Reading`. When the connection drops, or no
data and no keep-alive arrives for a few keep-alive periods (the data-flow-aware watchdog: a
server sends no keep-alive while data flows, so data counts as a sign of life), the session ends,
a STALE event goes out, and the client reconnects with backoff. After a reconnect it reads the
gap from the server's history, from the last source timestamp it received to the values now
current, and de-duplicates it against what arrives live, so nothing is missing or doubled.

The last source timestamp per sensor (the watermark) is kept with the edge buffer when the sink
has one (`WatermarkStore`), about every second, so a restarted edge process backfills the gap
its absence left too. A span it cannot backfill (older than `max_backfill_ms`, or a server
without history) becomes a `data_gap` lifecycle event naming it.

We reconnect ourselves rather than use asyncua's `auto_reconnect`: asyncua restores subscriptions
on its own but offers no hook for "subscription restored", and the backfill must run exactly
between "monitored items exist" and "live values are released".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import Client, ua
from asyncua.common.subscription import (
    DataChangeEvent,
    OverflowPolicy,
    StatusChangeEvent,
    Subscription,
)
from asyncua.observer import Observer, SubscriptionEvent

from plantlake.core import clock
from plantlake.core.clock import utc_text
from plantlake.core.config import OpcUaSettings, Settings
from plantlake.core.errors import SourceError
from plantlake.core.records import LifecycleEvent, LifecycleKind, Reading
from plantlake.ingest.edge import EdgeSink, WatermarkStore
from plantlake.ingest.opcua.browse import browse_sensors, read_history, read_values
from plantlake.ingest.opcua.connection import connect
from plantlake.ingest.opcua.gapfill import GapFiller
from plantlake.ingest.opcua.model import PROTOCOL, ROOT, SensorRef, datetime_to_ms, to_reading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpcUaClientOptions:
    """How the edge client subscribes; intervals in wall-clock ms/s, deadbands in device units."""

    publishing_interval_ms: int | None = None  # default: settings.opcua.sampling_interval_ms
    # Absolute deadband per sensor name (asyncua servers implement Absolute, not Percent).
    deadbands: Mapping[str, float] = field(default_factory=dict)
    # Changes a server may queue per item between publishes, so none is lost to a burst.
    queue_size: int = 100
    # Publishing intervals without data before the server sends a keep-alive.
    keepalive_count: int = 10
    stale_after_s: float | None = None  # default: three keep-alive periods, at least 2 s
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 10.0
    max_backfill_ms: int = 3_600_000  # source time read back from history after a reconnect
    # A source timestamp this far behind the newest one seen is a device clock reset, not a
    # duplicate: accept it and start over from there.
    clock_reset_ms: int = 600_000
    request_timeout_s: float = 10.0
    nodes_per_request: int = 500


def deadband_filter(sensor: str, deadbands: Mapping[str, float]) -> ua.DataChangeFilter | None:
    width = deadbands.get(sensor)
    if not width:
        return None
    return ua.DataChangeFilter(
        Trigger=ua.DataChangeTrigger.StatusValue,
        DeadbandType=ua.DeadbandType.Absolute,
        DeadbandValue=float(width),
    )


class _SessionEnded(Exception):
    """The session is over: the transport dropped, or data and keep-alives stopped."""


class _LossObserver(Observer):
    """Ends the session when asyncua re-creates a silent subscription by itself: values of the
    silent spell would be lost, while a new session backfills them from history."""

    def __init__(self, lost: asyncio.Event):
        self._lost = lost

    def observe_request(self, request: object) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # no per-request timing on the hot path

    def on_subscription_event(self, subscription_id: int | None, event: SubscriptionEvent) -> None:
        if event == SubscriptionEvent.RECREATED:
            self._lost.set()


class OpcUaEdgeClient:
    """Reads one OPC-UA endpoint into an EdgeSink, session after session."""

    def __init__(
        self,
        opcua: OpcUaSettings,
        pki: Path,
        sink: EdgeSink,
        *,
        options: OpcUaClientOptions = OpcUaClientOptions(),
        now_ms: Callable[[], int] = clock.now_ms,
        watermarks: WatermarkStore | None = None,
    ):
        self._opcua = opcua
        self._watermarks = watermarks
        self._pki = pki
        self._sink = sink
        self._options = options
        self._now_ms = now_ms
        self._gap = GapFiller(clock_reset_ms=options.clock_reset_ms)
        # A restarted process resumes from the watermarks its predecessor saved.
        self._resuming = False
        if watermarks is not None:
            saved = watermarks.load_watermarks()
            self._gap.seed(saved)
            self._resuming = bool(saved)
        self._pending: list[Reading] = []
        self._assets: list[str] = []
        self._sessions = 0  # sessions that got as far as subscribing
        self._healthy = False
        self._stale = False
        self._last_data = 0.0
        self.received = 0  # data changes received live
        self.backfilled = 0  # readings recovered from history

    @property
    def endpoint(self) -> str:
        return self._opcua.endpoint

    @property
    def publishing_ms(self) -> int:
        return self._options.publishing_interval_ms or self._opcua.sampling_interval_ms

    @property
    def stale_after_s(self) -> float:
        keepalive_s = self.publishing_ms * self._options.keepalive_count / 1000
        return self._options.stale_after_s or max(2.0, 3 * keepalive_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop` is set, reconnecting with backoff. Raises SourceError/ConfigError
        when the server refuses the session for good (wrong login, no such security)."""
        opts = self._options
        delay = opts.reconnect_min_s
        while not stop.is_set():
            try:
                await self._session(stop)
            except (OSError, TimeoutError, ConnectionError, ua.UaError, _SessionEnded) as exc:
                why = str(exc) or type(exc).__name__
                log.warning(
                    "OPC-UA session with %s ended (%s); reconnecting in %.1fs",
                    self.endpoint,
                    why,
                    delay,
                )
                self._mark_stale(why)
            if stop.is_set():
                break
            delay = opts.reconnect_min_s if self._healthy else delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, opts.reconnect_max_s)

    async def _session(self, stop: asyncio.Event) -> None:
        opts = self._options
        self._healthy = False
        client = await connect(self._opcua, self._pki, timeout_s=opts.request_timeout_s)
        lost = asyncio.Event()

        async def on_lost(exc: Exception) -> None:
            lost.set()

        client.connection_lost_callback = on_lost
        client.uaclient.observer = _LossObserver(lost)
        tasks: list[asyncio.Task] = []
        try:
            refs = await browse_sensors(client, per_request=opts.nodes_per_request)
            if not refs:
                raise SourceError(
                    f"OPC-UA server {self.endpoint} has no sensor variables under Objects/{ROOT}.",
                    hint="Point opcua.endpoint at a plantlake device server.",
                )
            self._assets = sorted({ref.asset for ref in refs.values()})
            params = ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=float(self.publishing_ms),
                RequestedLifetimeCount=opts.keepalive_count * 10,
                RequestedMaxKeepAliveCount=opts.keepalive_count,
                MaxNotificationsPerPublish=0,
                PublishingEnabled=True,
                Priority=0,
            )
            # Overflow forces a reconnect, whose backfill recovers what the queue could not hold.
            sub = await client.create_subscription(
                params,
                handler=None,
                queue_maxsize=max(10_000, 20 * len(refs)),
                overflow=OverflowPolicy.DISCONNECT,
            )
            resumed = self._sessions > 0 or self._resuming
            if resumed:
                self._gap.begin()
            self._last_data = time.monotonic()
            tasks.append(asyncio.create_task(self._consume(sub, refs, lost), name="opcua-consume"))
            tasks.append(asyncio.create_task(self._flush_every(0.05), name="opcua-flush"))
            tasks.append(asyncio.create_task(self._save_every(1.0), name="opcua-watermarks"))
            await self._monitor(sub, refs)
            self._sessions += 1
            if resumed:
                await self._backfill(client, refs)
                self._resuming = False
            self._healthy = True
            await self._watch(stop, sub, lost)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._flush()
            self._save_watermarks()
            if self._gap.backfilling:
                # The backfill did not finish: drop the held live values; the next session's
                # backfill reads them again from history, from the same starting point.
                self._gap.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), timeout=3)

    async def _monitor(self, sub: Subscription, refs: Mapping[ua.NodeId, SensorRef]) -> None:
        opts = self._options
        requests = [
            ua.MonitoredItemCreateRequest(
                ItemToMonitor=ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value),
                MonitoringMode=ua.MonitoringMode.Reporting,
                RequestedParameters=ua.MonitoringParameters(
                    ClientHandle=handle,
                    SamplingInterval=float(self._opcua.sampling_interval_ms),
                    Filter=deadband_filter(ref.sensor, opts.deadbands),
                    QueueSize=opts.queue_size,
                    DiscardOldest=True,
                ),
            )
            for handle, (node, ref) in enumerate(refs.items(), start=1)
        ]
        failed = []
        for start in range(0, len(requests), opts.nodes_per_request):
            batch = requests[start : start + opts.nodes_per_request]
            results = await sub.create_monitored_items(batch)
            failed += [
                (r.ItemToMonitor.NodeId, res)
                for r, res in zip(batch, results, strict=True)
                if isinstance(res, ua.StatusCode)
            ]
        if failed:
            log.warning(
                "%d of %d monitored items refused by %s, e.g. %s: %s",
                len(failed),
                len(requests),
                self.endpoint,
                failed[0][0].to_string(),
                failed[0][1],
            )
        if len(failed) == len(requests):
            raise _SessionEnded(f"every monitored item was refused ({failed[0][1]})")

    async def _consume(
        self, sub: Subscription, refs: Mapping[ua.NodeId, SensorRef], lost: asyncio.Event
    ) -> None:
        source = self.endpoint
        async for event in sub:
            if isinstance(event, DataChangeEvent):
                ref = refs.get(event.node.nodeid)
                if ref is None:
                    continue
                self._last_data = time.monotonic()
                self.received += 1
                self._pending.append(
                    to_reading(
                        ref,
                        event.data.monitored_item.Value,
                        receive_time_ms=self._now_ms(),
                        source_node=source,
                    )
                )
                if len(self._pending) >= 1000:
                    self._flush()
            elif isinstance(event, StatusChangeEvent) and not event.notification.Status.is_good():
                lost.set()  # the server ended the subscription (shutdown, timeout)

    async def _flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self._flush()

    async def _save_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self._save_watermarks()

    def _save_watermarks(self) -> None:
        """Persist how far each sensor got. After the sink stored the readings: a crash in
        between re-reads a second of history (dropped downstream as duplicates), never skips."""
        if self._watermarks is not None:
            self._watermarks.save_watermarks(self._gap.changes())

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        out = self._gap.live(batch)
        if out:
            self._sink.readings(out)

    async def _backfill(self, client: Client, refs: Mapping[ua.NodeId, SensorRef]) -> None:
        """Read the outage from history: from the newest source time received before it to the
        values current now (live changes from then on are already subscribed)."""
        opts = self._options
        newest = {node: self._gap.newest(ref.asset, ref.sensor) for node, ref in refs.items()}
        known = {node: ms for node, ms in newest.items() if ms is not None}
        nodes = list(known)
        restored: list[Reading] = []
        if nodes:
            current = await read_values(client, nodes, per_request=opts.nodes_per_request)
            ends = [
                datetime_to_ms(dv.SourceTimestamp)
                for dv in current
                if dv.SourceTimestamp is not None
            ]
            if ends:
                end = max(ends)
                wanted = min(known.values()) + 1
                start = max(wanted, end - opts.max_backfill_ms)
                if start > wanted:
                    self._gap_event(wanted, start, f"older than the {opts.max_backfill_ms // 60_000} "
                                    "min backfill limit (max_backfill_ms)")  # fmt: skip
                try:
                    history = await read_history(
                        client, nodes, start, end, per_request=max(1, opts.nodes_per_request // 5)
                    )
                except ua.UaStatusCodeError as exc:  # e.g. a server that keeps no history
                    self._gap_event(start, end, f"the server's history read failed: {exc}")
                    history = {}
                now = self._now_ms()
                restored = [
                    to_reading(refs[node], dv, receive_time_ms=now, source_node=self.endpoint)
                    for node, dvs in history.items()
                    for dv in dvs
                ]
        self._flush()  # whatever arrived live meanwhile joins the held values
        out = self._gap.finish(restored)
        self.backfilled += self._gap.restored
        if out:
            self._sink.readings(out)
        self._lifecycle(
            LifecycleKind.RECONNECTED,
            f"resubscribed; {self._gap.restored} readings backfilled from history",
        )
        self._stale = False

    async def _watch(self, stop: asyncio.Event, sub: Subscription, lost: asyncio.Event) -> None:
        """Until stop: end the session when the transport drops, or when neither data nor a
        keep-alive came for `stale_after_s` (data counts: servers skip keep-alives while it flows)."""
        stale_after = self.stale_after_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(0.25, stale_after / 4))
            if lost.is_set():
                raise _SessionEnded("connection lost")
            alive = max(self._last_data, sub.last_publish_at or 0.0)
            if time.monotonic() - alive > stale_after:
                raise _SessionEnded(f"no data and no keep-alive for {stale_after:.1f}s")

    def _gap_event(self, start_ms: int, end_ms: int, why: str) -> None:
        span = f"{utc_text(start_ms)} to {utc_text(end_ms)}"
        log.warning("OPC-UA %s: no backfill from %s UTC: %s", self.endpoint, span, why)
        self._lifecycle(LifecycleKind.DATA_GAP, f"source time {span} UTC not backfilled: {why}")

    def _mark_stale(self, why: str) -> None:
        if self._stale or self._sessions == 0:
            return  # already reported, or nothing was ever received that could go stale
        self._stale = True
        self._lifecycle(LifecycleKind.STALE, why)

    def _lifecycle(self, kind: LifecycleKind, detail: str) -> None:
        now = self._now_ms()
        for asset in self._assets:
            self._sink.lifecycle(
                LifecycleEvent(
                    kind=kind,
                    source_protocol=PROTOCOL,
                    source_node=self.endpoint,
                    event_time_ms=now,
                    receive_time_ms=now,
                    asset=asset,
                    detail=detail,
                )
            )


async def run_opcua_client(
    settings: Settings,
    sink: EdgeSink,
    *,
    stop: asyncio.Event,
    options: OpcUaClientOptions | None = None,
    now_ms: Callable[[], int] | None = None,
) -> None:
    """Read `settings.opcua.endpoint` into `sink` until `stop` is set (see OpcUaEdgeClient.run)."""
    backfill_ms = int(settings.opcua.max_backfill_minutes * 60_000)
    options = options or OpcUaClientOptions(max_backfill_ms=backfill_ms)
    client = OpcUaEdgeClient(
        settings.opcua, settings.pki, sink, options=options, now_ms=now_ms or clock.now_ms,
        watermarks=getattr(sink, "watermarks", None),  # the edge buffer's, in production
    )  # fmt: skip
    await client.run(stop)


def run_opcua_source(
    settings: Settings,
    sink: EdgeSink,
    stop: threading.Event,
    *,
    options: OpcUaClientOptions | None = None,
) -> None:
    """The blocking form, for `plantlake.ingest.runner.run_edge` sources."""

    async def main() -> None:
        astop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def bridge() -> None:
            stop.wait()
            with contextlib.suppress(RuntimeError):  # the loop may be gone already
                loop.call_soon_threadsafe(astop.set)

        threading.Thread(target=bridge, name="opcua-stop", daemon=True).start()
        await run_opcua_client(settings, sink, stop=astop, options=options)

    asyncio.run(main())
