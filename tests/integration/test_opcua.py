"""OPC-UA: the simulated device server and the edge client, on free loopback ports.

The plant runs at 10x, one sample per plant second, so the client sees ten changes per wall
second per sensor and a two-second outage is twenty samples of history to backfill.
"""

import asyncio
import secrets
import socket
import threading
import time
from collections import defaultdict

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua import uaerrors
from pydantic import SecretStr

from plantlake.core.config import OpcUaSettings, Settings, SimulatorSettings
from plantlake.core.errors import SourceError
from plantlake.core.records import LifecycleKind, Quality
from plantlake.ingest.edge import MemorySink, MemoryWatermarks
from plantlake.ingest.opcua.browse import browse_sensors
from plantlake.ingest.opcua.client import (
    OpcUaClientOptions,
    OpcUaEdgeClient,
    run_opcua_client,
    run_opcua_source,
)
from plantlake.ingest.opcua.connection import CLIENT_URI, client_certificate, connect
from plantlake.simulator.clock import SimClock
from plantlake.simulator.opcua_server import OpcUaDeviceServer, OpcUaServerOptions
from plantlake.simulator.plant import build_plant, device_time_ms, value_at
from tests.integration.opcua_server_thread import OpcUaServerThread

pytestmark = pytest.mark.integration

PLANT = build_plant(seed=7)
ASSETS = PLANT.by_protocol("opcua")
SENSORS = {(a.path, s.name): s for a in ASSETS for s in a.sensors}
SPEED = 10.0
PERIOD_MS = 1000  # plant time between samples
# The devices' clock starts after the plant's launch faults (an impossible value and NaNs in its
# first minute, see test_launch_faults.py): these tests expect the device's ordinary values.
T0 = PLANT.start_ms + 60 * PERIOD_MS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings(
    home, *, dev_profile: bool = False, security: str = "Basic256Sha256_SignAndEncrypt"
) -> Settings:
    port = _free_port()
    return Settings(
        home=home,
        opcua=OpcUaSettings(
            endpoint=f"opc.tcp://127.0.0.1:{port}/plantlake/",
            security=security,
            password=SecretStr(secrets.token_urlsafe(12)),
            sampling_interval_ms=100,
        ),
        simulator=SimulatorSettings(opcua_port=port, speed=SPEED, dev_profile=dev_profile),
    )


def _ServerThread(settings: Settings, options: OpcUaServerOptions | None = None):  # noqa: N802
    """The plant's OPC-UA server at SPEED, on its own loop (the client runs on the test's)."""
    clock = SimClock(T0, speed=SPEED)
    return OpcUaServerThread(settings, PLANT, clock, options=options or OpcUaServerOptions())


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("opcua"))
    with _ServerThread(settings, OpcUaServerOptions(sample_period_ms=PERIOD_MS)):
        yield settings


async def _until(condition, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        await asyncio.sleep(0.05)


async def _browse(opcua: OpcUaSettings, pki) -> dict:
    client = await connect(opcua, pki)
    try:
        return await browse_sensors(client)
    finally:
        await client.disconnect()


def _per_sensor(readings) -> dict[tuple[str, str], list]:
    out = defaultdict(list)
    for reading in readings:
        out[(reading.asset, reading.sensor)].append(reading)
    return out


def _plant_time(asset, event_time_ms: int) -> int:
    """The grid instant a device stamped `event_time_ms` on, undoing its clock drift."""
    guess = PLANT.start_ms + round(
        (event_time_ms - PLANT.start_ms) / (1 + asset.clock_drift_ppm / 1e6)
    )
    t = PLANT.start_ms + round((guess - PLANT.start_ms) / PERIOD_MS) * PERIOD_MS
    assert device_time_ms(asset, PLANT, t) == event_time_ms, (
        "source timestamp is off the device's sample grid"
    )
    return t


def test_browse_discovers_every_opcua_sensor_with_the_unit_its_device_reports(device):
    refs = asyncio.run(_browse(device.opcua, device.pki))
    found = {(ref.asset, ref.sensor, ref.unit) for ref in refs.values()}
    assert found == {(path, name, sensor.unit) for (path, name), sensor in SENSORS.items()}
    assert {"degF", "psi", "K"} <= {ref.unit for ref in refs.values()}  # as reported, not canonical


def test_server_offers_only_signed_and_encrypted_endpoints_with_a_user_login(device):
    async def endpoints():
        return await Client(device.opcua.endpoint).connect_and_get_server_endpoints()

    for endpoint in asyncio.run(endpoints()):
        assert endpoint.SecurityPolicyUri == SecurityPolicyBasic256Sha256.URI
        assert endpoint.SecurityMode == ua.MessageSecurityMode.SignAndEncrypt
        assert [t.TokenType for t in endpoint.UserIdentityTokens] == [ua.UserTokenType.UserName]


def test_subscription_delivers_good_readings_with_the_device_units_and_clock(device):
    sink = MemorySink()

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(run_opcua_client(device, sink, stop=stop))

        def enough() -> bool:
            per_sensor = _per_sensor(sink.all_readings)
            return len(per_sensor) == len(SENSORS) and all(len(v) >= 5 for v in per_sensor.values())

        await _until(enough, "five readings of every sensor")
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(run())
    for (path, name), readings in _per_sensor(sink.all_readings).items():
        asset = PLANT.asset(path)
        for reading in readings:
            assert reading.quality == Quality.GOOD
            assert reading.unit == SENSORS[(path, name)].unit
            assert (reading.source_protocol, reading.source_node) == (
                "opcua",
                device.opcua.endpoint,
            )
            t = _plant_time(asset, reading.event_time_ms)
            assert reading.value == value_at(PLANT, asset, asset.sensor(name), t)[0]
        stamps = [r.event_time_ms for r in readings]
        assert stamps == sorted(set(stamps))
    drifting = next(a for a in ASSETS if a.clock_drift_ppm)
    late = max(r.event_time_ms for r in sink.all_readings if r.asset == drifting.path)
    assert late != _plant_time(drifting, late)  # that device's clock runs ahead of plant time


def test_the_blocking_source_form_reads_until_its_stop_event(device):
    sink, stop = MemorySink(), threading.Event()
    thread = threading.Thread(target=run_opcua_source, args=(device, sink, stop), daemon=True)
    thread.start()
    try:
        asyncio.run(
            _until(
                lambda: len(_per_sensor(sink.all_readings)) == len(SENSORS),
                "readings of every sensor",
            )
        )
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_a_wrong_password_is_refused_and_the_client_gives_up(device):
    wrong = device.opcua.model_copy(update={"password": SecretStr("not-the-password")})
    with pytest.raises(SourceError) as err:
        asyncio.run(_browse(wrong, device.pki))
    assert err.value.code == "source"
    assert "BadUserAccessDenied" in str(err.value)

    async def run_client():
        await asyncio.wait_for(
            run_opcua_client(
                device.model_copy(update={"opcua": wrong}), MemorySink(), stop=asyncio.Event()
            ),
            20,
        )

    with pytest.raises(SourceError):
        asyncio.run(run_client())


def test_anonymous_sessions_are_refused_unless_the_dev_profile_allows_them(device, tmp_path):
    anonymous = device.opcua.model_copy(update={"security": "none", "password": SecretStr("")})
    with pytest.raises(SourceError, match="offers no endpoint"):
        asyncio.run(_browse(anonymous, device.pki))

    async def anonymous_but_encrypted():
        client = Client(device.opcua.endpoint)
        client.application_uri = CLIENT_URI
        cert, key = await client_certificate(device.pki)
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            str(cert),
            str(key),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        await client.connect()

    with pytest.raises(uaerrors.BadIdentityTokenRejected):
        asyncio.run(anonymous_but_encrypted())

    dev = _settings(tmp_path, dev_profile=True)
    with _ServerThread(dev):
        dev_anonymous = dev.opcua.model_copy(update={"security": "none", "password": SecretStr("")})
        refs = asyncio.run(_browse(dev_anonymous, dev.pki))
        assert {(ref.asset, ref.sensor) for ref in refs.values()} == set(SENSORS)
        # The dev profile adds the plain endpoint; the secure one with a login still works.
        assert len(asyncio.run(_browse(dev.opcua, dev.pki))) == len(SENSORS)


def test_after_a_server_restart_the_client_resubscribes_and_backfills_the_gap(tmp_path):
    settings = _settings(tmp_path)
    options = OpcUaServerOptions(sample_period_ms=PERIOD_MS, history_db=tmp_path / "history.sqlite")
    clock = SimClock(T0, speed=SPEED)
    sink = MemorySink()
    client = OpcUaEdgeClient(
        settings.opcua,
        settings.pki,
        sink,
        options=OpcUaClientOptions(reconnect_min_s=0.2, reconnect_max_s=1.0),
    )

    def kinds():
        return [e.kind for e in sink.events]

    async def run():
        server = OpcUaDeviceServer(settings, PLANT, clock, options=options)
        await server.start()
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        await _until(
            lambda: len(_per_sensor(sink.all_readings)) == len(SENSORS), "readings of every sensor"
        )
        await server.stop()
        outage_from = clock.now_ms()
        await _until(lambda: LifecycleKind.STALE in kinds(), "a STALE event")
        await asyncio.sleep(1.5)
        # A new server process: same port, same history database, nothing kept in memory.
        restarted = OpcUaDeviceServer(settings, PLANT, clock, options=options)
        await restarted.start()
        back_at = clock.now_ms()
        await _until(lambda: LifecycleKind.RECONNECTED in kinds(), "a RECONNECTED event")
        await _until(
            lambda: (
                min(
                    max(r.event_time_ms for r in v) for v in _per_sensor(sink.all_readings).values()
                )
                > back_at + 2 * PERIOD_MS
            ),
            "live readings after the restart",
        )
        stop.set()
        await asyncio.wait_for(task, 10)
        await restarted.stop()
        return outage_from, back_at

    outage_from, back_at = asyncio.run(run())
    for asset in ASSETS:
        events = [e.kind for e in sink.events if e.asset == asset.path]
        assert events == [LifecycleKind.STALE, LifecycleKind.RECONNECTED], asset.path
    assert client.backfilled > 0
    for (path, name), readings in _per_sensor(sink.all_readings).items():
        stamps = [r.event_time_ms for r in readings]
        assert stamps == sorted(set(stamps)), f"{path}/{name}: out of order or duplicated"
        assert stamps[0] < outage_from and stamps[-1] > back_at
        hole = max(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        assert hole <= PERIOD_MS + 1, (
            f"{path}/{name}: a {hole} ms hole in source time"
        )  # +1: drift rounding
        asset = PLANT.asset(path)
        for reading in readings:  # backfilled values are the device's values too
            assert (
                reading.value
                == value_at(
                    PLANT, asset, asset.sensor(name), _plant_time(asset, reading.event_time_ms)
                )[0]
            )


def _edge_run(settings, sink, store, *, until, options=None):
    """One run of an edge process's OPC-UA client, until `until(sink)` holds."""

    async def run():
        client = OpcUaEdgeClient(settings.opcua, settings.pki, sink, watermarks=store,
                                 options=options or OpcUaClientOptions())  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        await _until(lambda: until(sink), "the edge run's readings", timeout=30)
        stop.set()
        await asyncio.wait_for(task, 10)
        return client

    return asyncio.run(run())


def _every_sensor_read(sink) -> bool:
    return len(_per_sensor(sink.all_readings)) == len(SENSORS)


def test_a_restarted_edge_process_backfills_the_gap_its_absence_left(tmp_path):
    """Issue 13.4: the watermark is kept with the edge buffer, so a new process (nothing in
    memory) reads the time it was away from the server's history: no hole, nothing twice."""
    from plantlake.ingest.buffer import Outbox

    settings = _settings(tmp_path)
    options = OpcUaServerOptions(sample_period_ms=PERIOD_MS, history_db=tmp_path / "history.sqlite")
    with _ServerThread(settings, options):
        first = MemorySink()
        _edge_run(settings, first, Outbox(tmp_path / "edge.sqlite"), until=_every_sensor_read)
        time.sleep(2.0)  # the edge process is gone: 20 samples per sensor happen meanwhile
        second = MemorySink()
        reopened = Outbox(tmp_path / "edge.sqlite")  # a new process: the buffer file only
        client = _edge_run(settings, second, reopened,
                           until=lambda s: _every_sensor_read(s) and len(s.all_readings) > 60 * len(SENSORS))  # fmt: skip
    assert client.backfilled >= 15 * len(SENSORS)
    before, after = _per_sensor(first.all_readings), _per_sensor(second.all_readings)
    for key, readings in before.items():
        stamps = [r.event_time_ms for r in readings + after[key]]
        assert stamps == sorted(set(stamps)), f"{key}: out of order or twice"
        hole = max(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        assert hole <= PERIOD_MS + 1, f"{key}: a {hole} ms hole across the restart"
    assert [e.kind for e in second.events] == [LifecycleKind.RECONNECTED] * len(ASSETS)


def test_a_gap_older_than_the_backfill_limit_is_reported_not_hidden(tmp_path):
    settings = _settings(tmp_path)
    options = OpcUaServerOptions(sample_period_ms=PERIOD_MS, history_db=tmp_path / "history.sqlite")
    store = MemoryWatermarks()
    with _ServerThread(settings, options):
        _edge_run(settings, MemorySink(), store, until=_every_sensor_read)
        time.sleep(2.0)  # about 20 s of source time
        second = MemorySink()
        _edge_run(settings, second, store, until=_every_sensor_read,
                  options=OpcUaClientOptions(max_backfill_ms=5_000))  # fmt: skip
    gaps = [e for e in second.events if e.kind is LifecycleKind.DATA_GAP]
    assert {e.asset for e in gaps} == {a.path for a in ASSETS}
    assert "not backfilled" in gaps[0].detail and "backfill limit" in gaps[0].detail


def test_a_server_with_another_certificate_gets_no_credentials(tmp_path, monkeypatch):
    """Issue 13.9: the client pins the server's certificate (on first use, or as configured) and
    refuses a server presenting another before it sends the password: a man in the middle on
    the endpoint learns nothing."""
    from plantlake.simulator import opcua_server

    logins = []
    real = opcua_server._PasswordUsers.get_user

    def recording(self, iserver, username=None, password=None, certificate=None):
        logins.append(username)
        return real(self, iserver, username, password, certificate)

    monkeypatch.setattr(opcua_server._PasswordUsers, "get_user", recording)
    settings = _settings(tmp_path / "plant")
    with _ServerThread(settings):
        assert asyncio.run(_browse(settings.opcua, settings.pki))  # pins the real one
    assert logins  # the real server saw the login
    logins.clear()
    # The rogue: same endpoint and password, its own key pair.
    rogue = settings.model_copy(update={"home": tmp_path / "rogue"})
    with _ServerThread(rogue), pytest.raises(SourceError, match="presented certificate") as refused:
        asyncio.run(_browse(settings.opcua, settings.pki))
    assert logins == []  # no credentials reached it
    assert "opcua.server_certificate" in str(refused.value)
