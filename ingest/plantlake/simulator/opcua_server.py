"""The simulated OPC-UA device server for the plant's opcua assets (simulator, I/O adapter).

Values come from the deterministic plant on a fixed grid of plant time (one sample every
`sample_period_ms`), stamped with the device's own, possibly drifting, clock. Every sample is
historized before it is published, so HistoryRead can fill any gap a client saw. A restarted
server with the same history database first replays, from the device's buffer, the samples it
missed while it was down (up to `max_catchup_ms`), as a gateway in front of a logging PLC does.

Security: Basic256Sha256 SignAndEncrypt with a certificate generated on first use under
`settings.pki`, and a user login; anonymous, unencrypted sessions only with the dev profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.history import HistoryDict
from asyncua.server.history_sql import HistorySQLite
from asyncua.server.user_managers import UserManager
from asyncua.ua.ua_binary import variant_to_binary
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantlake.core.config import Settings
from plantlake.core.errors import ConfigError, SourceError
from plantlake.ingest.opcua.connection import self_signed_certificate
from plantlake.ingest.opcua.model import (
    NAMESPACE_URI,
    SensorVariable,
    address_space_items,
    data_value,
    datetime_to_ms,
    sensor_variables,
)
from plantlake.simulator.clock import SimClock
from plantlake.simulator.plant import Asset, Plant, device_time_ms, value_at

log = logging.getLogger(__name__)

SERVER_URI = "urn:plantlake:simulator:opcua"


@dataclass(frozen=True)
class OpcUaServerOptions:
    """How the simulated device behaves (plant time, not wall time, unless said otherwise)."""

    sample_period_ms: int = 1000
    # SQLite file that keeps the history across restarts; None keeps it in memory.
    history_db: Path | None = None
    historize: bool = True
    # A restarted server replays at most this much missed plant time from the device buffer.
    max_catchup_ms: int = 10 * 60_000
    # When behind, the newest samples still go out live (one data change each); older ones
    # are only historized, so a long catch-up does not flood subscribers.
    live_burst: int = 5
    memory_history_count: int = 200_000


class _PasswordUsers(UserManager):
    """One user name and password; anonymous sessions only when the dev profile allows them."""

    def __init__(self, username: str, password: str, *, allow_anonymous: bool):
        self._username = username
        self._password = password.encode()
        self._allow_anonymous = allow_anonymous

    def get_user(self, iserver, username=None, password=None, certificate=None) -> User | None:
        # Only user-name and anonymous tokens get this far (no X509 tokens are offered);
        # `certificate` is the channel's client certificate, present for both.
        if username is None:
            return User(role=UserRole.User) if self._allow_anonymous else None
        if not self._password or username != self._username:
            return None
        given = password.encode() if isinstance(password, str) else (password or b"")
        return (
            User(role=UserRole.User, name=username)
            if hmac.compare_digest(given, self._password)
            else None
        )


def _sql_time(dt: datetime) -> str:
    """Naive UTC with microseconds: one fixed text layout, so SQLite's text comparison is
    chronological and Python's default TIMESTAMP converter can read it back."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.isoformat(" ", timespec="microseconds")


class _SqliteHistory(HistorySQLite):
    """asyncua's SQLite history with batched inserts (one commit per tick, not per value) and
    timestamps it can read back.

    asyncua stores aware datetimes as text with a "+00:00" suffix, which Python's TIMESTAMP
    converter cannot parse for whole seconds (HistoryRead fails) and silently drops otherwise;
    and it bounds reads by wall-clock now, which simulated time runs past.
    """

    def _get_table_name(self, node_id: ua.NodeId) -> str:
        # asyncua names tables by repr(Identifier), which quotes string node ids, and then
        # rejects its own quote as SQL injection: string ids could never be historized. So the
        # str() form (a bytes id reads b'...', and its quotes are replaced below).
        name = f"{node_id.NamespaceIndex}_{node_id.Identifier!s}"
        return "".join("_" if c in " ;,()[]\"'" else c for c in name)

    async def init(self) -> None:
        await super().init()
        # WAL lets HistoryRead run while the updater writes.
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")

    async def save_many(self, values: Mapping[ua.NodeId, Sequence[ua.DataValue]]) -> None:
        for node_id, dvs in values.items():
            rows = [_history_row(dv) for dv in dvs]
            await self._db.executemany(
                f'INSERT INTO "{self._get_table_name(node_id)}" VALUES (NULL, ?, ?, ?, ?, ?, ?)',
                rows,
            )
        await self._db.commit()

    @staticmethod
    def _get_bounds(
        start: datetime | None, end: datetime | None, nb_values: int
    ) -> tuple[str, str, str, int]:
        # HistorySQLite._get_bounds with our time layout and no wall-clock end.
        order = "ASC"
        if start is None or start == ua.get_win_epoch():
            order, start = "DESC", ua.get_win_epoch()
        if end is None or end == ua.get_win_epoch():
            end = datetime.max.replace(tzinfo=UTC)
        if start > end:
            order, start, end = "DESC", end, start
        return _sql_time(start), _sql_time(end), order, nb_values or -1

    async def last_ms(self, node_id: ua.NodeId) -> int | None:
        try:
            query = f'SELECT SourceTimestamp FROM "{self._get_table_name(node_id)}" ORDER BY _Id DESC LIMIT 1'
            async with self._db.execute(query) as cursor:
                row = await cursor.fetchone()
        except sqlite3.Error:
            return None
        return datetime_to_ms(row[0]) if row and row[0] is not None else None


class _MemoryHistory(HistoryDict):
    async def save_many(self, values: Mapping[ua.NodeId, Sequence[ua.DataValue]]) -> None:
        for node_id, dvs in values.items():
            for dv in dvs:
                await self.save_node_value(node_id, dv)

    async def last_ms(self, node_id: ua.NodeId) -> int | None:
        data = self._datachanges.get(node_id)
        # As in the SQLite history, a sample without a source time gives no resume point.
        source = data[-1].SourceTimestamp if data else None
        return datetime_to_ms(source) if source is not None else None


def _history_row(dv: ua.DataValue) -> tuple[str, str, int, str, str, memoryview]:
    """Same row layout as HistorySQLite.save_node_value, which HistoryRead decodes."""
    variant, status = dv.Value, dv.StatusCode
    server_ts, source_ts = dv.ServerTimestamp, dv.SourceTimestamp
    if variant is None or status is None or server_ts is None or source_ts is None:
        raise ValueError(f"A DataValue to historize lacks its value, status or a timestamp: {dv}")
    return (
        _sql_time(server_ts),
        _sql_time(source_ts),
        status.value,
        str(variant.Value),
        variant.VariantType.name,
        sqlite3.Binary(variant_to_binary(variant)),
    )


def _source_ms(dv: ua.DataValue) -> int:
    if dv.SourceTimestamp is None:
        raise ValueError(f"A sample DataValue lacks its source timestamp: {dv}")
    return datetime_to_ms(dv.SourceTimestamp)


def _change_key(dv: ua.DataValue) -> tuple[object, int]:
    """What tells a data change from a repeat: the value and the status code."""
    if dv.Value is None or dv.StatusCode is None:
        raise ValueError(f"A sample DataValue lacks its value or status: {dv}")
    return dv.Value.Value, dv.StatusCode.value


def _null_bad(dv: ua.DataValue) -> ua.DataValue:
    # The server nulls the value of a Bad sample when it is written (Part 4 §7.7.1); history
    # must hold the same DataValue a subscriber saw.
    if dv.StatusCode is not None and dv.StatusCode.is_bad():
        return ua.DataValue(
            ua.Variant(None, ua.VariantType.Null),
            StatusCode=dv.StatusCode,
            SourceTimestamp=dv.SourceTimestamp,
            ServerTimestamp=dv.ServerTimestamp,
        )
    return dv


class OpcUaDeviceServer:
    """The plant's opcua assets behind one OPC-UA endpoint. `start()` again after `stop()` to
    simulate a device server going away and coming back (same port, same history database)."""

    def __init__(
        self,
        settings: Settings,
        plant: Plant,
        clock: SimClock,
        *,
        port: int | None = None,
        options: OpcUaServerOptions = OpcUaServerOptions(),
        assets: Sequence[Asset] | None = None,
    ):
        self._settings = settings
        self._plant = plant
        self._clock = clock
        self._options = options
        self._assets = tuple(assets if assets is not None else plant.by_protocol("opcua"))
        self._variables = sensor_variables(self._assets)
        self.port = port if port is not None else settings.simulator.opcua_port
        path = urlparse(settings.opcua.endpoint).path or "/plantlake/"
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}{path}"
        self._server: Server | None = None
        self._storage: _SqliteHistory | _MemoryHistory | None = None
        self._memory_storage: _MemoryHistory | None = None  # survives stop/start in memory mode
        self._updater: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._node_ids: list[ua.NodeId] = []
        self._last_source: dict[ua.NodeId, int | None] = {}
        self.samples_published = 0  # live samples written (the server's update rate)
        # ...of which differ from the tag's previous value or status: what a subscriber without
        # a deadband is sent (a constant, like a running flag, is not re-sent).
        self.samples_changed = 0
        self._previous: dict[ua.NodeId, tuple] = {}
        self.samples_historized = 0

    @property
    def variables(self) -> list[SensorVariable]:
        return list(self._variables)

    async def __aenter__(self) -> OpcUaDeviceServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build the address space, listen on 127.0.0.1:`port`, start publishing samples."""
        if self._server is not None:
            return
        sim = self._settings.simulator
        password = self._settings.opcua.password.get_secret_value()
        if not password and not sim.dev_profile:
            raise ConfigError(
                "The OPC-UA simulator needs a user password (settings opcua.password).",
                hint="Run `plantlake up` once to generate local secrets, or set PLANTLAKE_OPCUA__PASSWORD.",
            )
        server = Server(
            user_manager=_PasswordUsers(
                self._settings.opcua.username, password, allow_anonymous=sim.dev_profile
            )
        )
        self._storage = self._history_storage()
        server.iserver.history_manager.set_storage(self._storage)
        await server.init()
        try:
            resume = await self._build(server)
            # The first samples go in before anyone can connect: no client ever sees the
            # placeholder values the address space was built with.
            resume = await self._advance(server, resume, self._clock.now_ms())
            await server.start()
        except BaseException as exc:
            # Close the history database too, or its worker thread keeps the process alive
            # (asyncua already closed it when the listener failed to start).
            with contextlib.suppress(Exception):
                await server.iserver.history_manager.stop()
            if isinstance(exc, OSError):
                raise SourceError(
                    f"Cannot listen on {self.endpoint}: {exc}.",
                    hint="Another process holds the port; pick another port.",
                ) from exc
            raise
        self._server = server
        self._stopping = asyncio.Event()
        self._updater = asyncio.create_task(
            self._update_loop(server, resume), name="opcua-sim-updater"
        )
        log.info(
            "OPC-UA simulator listening on %s (%d variables)", self.endpoint, len(self._variables)
        )

    async def _build(self, server: Server) -> int:
        """Endpoint, security, certificate and address space; returns the plant time to resume at."""
        opts, sim = self._options, self._settings.simulator
        server.set_endpoint(self.endpoint)
        server.set_server_name("plantlake simulated plant")
        await server.set_application_uri(SERVER_URI)
        policies = [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
        tokens: list[type] = [ua.UserNameIdentityToken]
        if sim.dev_profile:  # local development only: also plain, anonymous sessions
            policies.append(ua.SecurityPolicyType.NoSecurity)
            tokens.append(ua.AnonymousIdentityToken)
        server.set_security_policy(policies)
        server.set_identity_tokens(tokens)
        cert, key = await server_certificate(self._settings.pki)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        ns = await server.register_namespace(NAMESPACE_URI)
        items = address_space_items(self._assets, ns, sampling_ms=float(opts.sample_period_ms))
        for result in await server.iserver.isession.add_nodes(items):
            result.StatusCode.check()
        self._node_ids = [v.node_id(ns) for v in self._variables]
        if opts.historize:
            count = 0 if opts.history_db else opts.memory_history_count
            for node_id in self._node_ids:
                with contextlib.suppress(
                    ua.UaError
                ):  # already known after a restart in memory mode
                    await self._history.new_historized_node(node_id, period=None, count=count)
        return await self._resume_ms()

    async def stop(self) -> None:
        """Stop publishing and close every session; the history database is kept."""
        if self._server is None:
            return
        self._stopping.set()
        if self._updater is not None:
            try:
                await asyncio.wait_for(self._updater, timeout=10)
            except TimeoutError:
                self._updater.cancel()
        server, self._server = self._server, None
        await server.stop()

    @property
    def _history(self) -> _SqliteHistory | _MemoryHistory:
        """The storage `start` set up (the sampling code runs only after it did)."""
        if self._storage is None:
            raise RuntimeError("The OPC-UA simulator has no history storage before start().")
        return self._storage

    def _history_storage(self) -> _SqliteHistory | _MemoryHistory:
        path = self._options.history_db
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            return _SqliteHistory(str(path))
        if self._memory_storage is None:
            self._memory_storage = _MemoryHistory()
        return self._memory_storage

    def _grid_floor(self, t_ms: int) -> int:
        period, start = self._options.sample_period_ms, self._plant.start_ms
        return start + (t_ms - start) // period * period

    async def _resume_ms(self) -> int:
        """The first plant time to sample: after what the history already holds, bounded by the
        catch-up window; now when there is no history."""
        now = self._grid_floor(self._clock.now_ms())
        if not self._options.historize:
            return now
        lasts = [await self._history.last_ms(node_id) for node_id in self._node_ids]
        self._last_source = dict(zip(self._node_ids, lasts, strict=True))
        known = [ms for ms in lasts if ms is not None]
        if not known:
            return now
        period = self._options.sample_period_ms
        ahead = [
            var.node_key
            for var, last in zip(self._variables, lasts, strict=True)
            if last is not None and last > device_time_ms(var.asset, self._plant, now) + period
        ]
        if ahead:
            # A simulation restarted from an earlier plant time: its history lies in the
            # future. Publish from now; HistoryRead still returns rows by source time.
            log.warning(
                "History of %s runs ahead of the plant clock; publishing from now", ahead[0]
            )
            self._last_source = {}
            return now
        # Device stamps run ahead of plant time on a drifting clock; start from the earliest
        # and let `_sample` skip what each variable already has.
        earliest = self._grid_floor(min(known) - period)
        return max(earliest, now - self._options.max_catchup_ms)

    def _sample(self, t_ms: int, server_ms: int) -> dict[ua.NodeId, ua.DataValue]:
        values = {}
        for var, node_id in zip(self._variables, self._node_ids, strict=True):
            source_ms = device_time_ms(var.asset, self._plant, t_ms)
            last = self._last_source.get(node_id) if self._options.historize else None
            if last is not None and source_ms <= last:
                continue
            value, quality = value_at(self._plant, var.asset, var.sensor, t_ms)
            values[node_id] = _null_bad(
                data_value(value, quality, source_ms=source_ms, server_ms=server_ms)
            )
        return values

    async def _update_loop(self, server: Server, next_ms: int) -> None:
        while not self._stopping.is_set():
            now = self._clock.now_ms()
            if next_ms > now:
                wait_s = (next_ms - now) / self._clock.speed / 1000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=min(wait_s, 1.0))
                continue
            next_ms = await self._advance(server, next_ms, now)

    async def _advance(self, server: Server, next_ms: int, now: int) -> int:
        """Sample every grid tick from `next_ms` to `now`; returns the next tick to sample."""
        period, opts = self._options.sample_period_ms, self._options
        ticks = range(next_ms, self._grid_floor(now) + 1, period)
        if not ticks:
            return next_ms
        live = ticks[-opts.live_burst :]
        # Ticks older than the live burst only go to history; without history they are skipped.
        backlog = len(ticks) - len(live) if opts.historize else 0
        for chunk_start in range(0, backlog, 200):
            batch = ticks[chunk_start : min(chunk_start + 200, backlog)]
            history: dict[ua.NodeId, list[ua.DataValue]] = {}
            for t in batch:
                for node_id, dv in self._sample(t, now).items():
                    history.setdefault(node_id, []).append(dv)
            await self._historize(history)
            await asyncio.sleep(0)  # stay responsive to clients during a long catch-up
        for t in live:
            values = self._sample(t, now)
            # Historize first: whatever a client is sent is already in the history.
            await self._historize({node_id: [dv] for node_id, dv in values.items()})
            for node_id, dv in values.items():
                await server.iserver.write_attribute_value(node_id, dv)
                state = _change_key(dv)
                if self._previous.get(node_id) != state:
                    self._previous[node_id] = state
                    self.samples_changed += 1
            self.samples_published += len(values)
            # Writes never suspend: yield so an overloaded device still answers its clients.
            await asyncio.sleep(0)
        return ticks[-1] + period

    async def _historize(self, values: dict[ua.NodeId, list[ua.DataValue]]) -> None:
        if not self._options.historize or not values:
            return
        await self._history.save_many(values)
        for node_id, dvs in values.items():
            self._last_source[node_id] = _source_ms(dvs[-1])
            self.samples_historized += len(dvs)


async def server_certificate(pki: Path) -> tuple[Path, Path]:
    """The simulator's certificate and key, generated on first use."""
    return await self_signed_certificate(
        pki / "opcua-server", SERVER_URI, ExtendedKeyUsageOID.SERVER_AUTH
    )


async def run_opcua_server(
    settings: Settings,
    plant: Plant,
    clock: SimClock,
    *,
    stop: asyncio.Event,
    port: int | None = None,
    options: OpcUaServerOptions = OpcUaServerOptions(),
) -> None:
    """Serve the plant's opcua assets on 127.0.0.1:`port` until `stop` is set."""
    async with OpcUaDeviceServer(settings, plant, clock, port=port, options=options):
        await stop.wait()
