"""The primary host state machine: sessions, seq tracking, rebirths, deaths and dead letters."""

from hypothesis import given
from hypothesis import strategies as st

from plantlake.core.records import LifecycleKind, Quality
from plantlake.ingest.sparkplug.codec import DataType, Metric, encode_payload
from plantlake.ingest.sparkplug.host import HostOptions, PrimaryHost

GROUP, NODE, DEVICE = "plant1", "line1-gateway", "pump-02"
BASE = f"spBv1.0/{GROUP}"
TEMP = Metric("bearing_temperature", DataType.DOUBLE, 55.0, alias=1, unit="degC")
PRES = Metric("discharge_pressure", DataType.FLOAT, 6.0, alias=2, unit="bar")
RUNNING = Metric("running", DataType.BOOLEAN, True, alias=3)


def _nbirth(bd_seq: int, seq: int = 0) -> bytes:
    metrics = [Metric("bdSeq", DataType.INT64, bd_seq),
               Metric("Node Control/Rebirth", DataType.BOOLEAN, False)]  # fmt: skip
    return encode_payload(metrics, seq=seq, timestamp_ms=1000, birth=True)


def _ndeath(bd_seq: int) -> bytes:
    return encode_payload([Metric("bdSeq", DataType.INT64, bd_seq)], seq=None, timestamp_ms=1000)


def _dbirth(seq: int) -> bytes:
    return encode_payload([TEMP, PRES, RUNNING], seq=seq, timestamp_ms=1000, birth=True)


def _ddata(seq: int, value: float = 56.0, **extra) -> bytes:
    metric = Metric(TEMP.name, TEMP.datatype, value, alias=1, timestamp_ms=5000 + seq, **extra)
    return encode_payload([metric], seq=seq, timestamp_ms=5000 + seq)


def _born(host: PrimaryHost, bd_seq: int = 3) -> None:
    host.handle(f"{BASE}/NBIRTH/{NODE}", _nbirth(bd_seq), 1)
    host.handle(f"{BASE}/DBIRTH/{NODE}/{DEVICE}", _dbirth(1), 2)


def _host(**options) -> PrimaryHost:
    return PrimaryHost(HostOptions(reorder_timeout_ms=0, **options))


def test_births_then_data_become_readings_with_units_and_asset_paths():
    host = _host()
    birth = host.handle(f"{BASE}/NBIRTH/{NODE}", _nbirth(3), 1)
    assert [(e.kind, e.bd_seq) for e in birth.events] == [(LifecycleKind.BIRTH, 3)]
    assert birth.readings == []  # bdSeq and Node Control are not sensor readings
    dbirth = host.handle(f"{BASE}/DBIRTH/{NODE}/{DEVICE}", _dbirth(1), 2)
    assert {(r.sensor, r.value, r.unit) for r in dbirth.readings} == {
        ("bearing_temperature", 55.0, "degC"), ("discharge_pressure", 6.0, "bar"),
        ("running", 1.0, None),
    }  # fmt: skip
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(2, 57.5), 99)
    (reading,) = out.readings
    assert reading.asset == "plant1/line1/pump-02" and reading.sensor == "bearing_temperature"
    assert (reading.value, reading.unit, reading.quality) == (57.5, "degC", Quality.GOOD)
    assert (reading.event_time_ms, reading.receive_time_ms, reading.sequence) == (5002, 99, 2)
    assert reading.source_node == "plant1/line1-gateway" and reading.source_protocol == "sparkplug"
    assert out.rebirths == [] and out.dead_letters == []


def test_seq_wraps_from_255_to_0_without_a_gap():
    host = _host()
    host.handle(f"{BASE}/NBIRTH/{NODE}", _nbirth(0, seq=253), 1)
    host.handle(f"{BASE}/DBIRTH/{NODE}/{DEVICE}", _dbirth(254), 2)
    outs = [host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(s), 3) for s in (255, 0, 1)]
    assert all(o.rebirths == [] and len(o.readings) == 1 for o in outs)


@given(start=st.integers(0, 255), count=st.integers(1, 600))
def test_in_order_messages_never_request_a_rebirth_whatever_the_wraps(start, count):
    host = _host()
    host.handle(f"{BASE}/NBIRTH/{NODE}", _nbirth(0, seq=start), 1)
    host.handle(f"{BASE}/DBIRTH/{NODE}/{DEVICE}", _dbirth((start + 1) % 256), 2)
    for k in range(2, count + 2):
        out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata((start + k) % 256), 3)
        assert out.rebirths == [] and len(out.readings) == 1


def test_a_seq_gap_requests_a_rebirth_and_the_data_still_flows():
    host = _host()
    _born(host)
    host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(2), 3)
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(5), 4)  # 3 and 4 are lost
    assert [(r.group, r.node) for r in out.rebirths] == [(GROUP, NODE)]
    assert [e.kind for e in out.events] == [LifecycleKind.REBIRTH_REQUESTED]
    assert "expected 3, got 5" in out.events[0].detail
    assert len(out.readings) == 1
    # The next message continues from 5: no second request.
    assert host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(6), 5).rebirths == []


def test_a_reordered_message_within_the_timeout_is_not_a_gap():
    host = PrimaryHost(HostOptions(reorder_timeout_ms=500))
    _born(host)
    early = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(3, 3.0), 10)
    assert early.readings == [] and early.rebirths == []  # held, waiting for seq 2
    late = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(2, 2.0), 20)
    assert [r.value for r in late.readings] == [2.0, 3.0] and late.rebirths == []


def test_a_gap_that_outlasts_the_timeout_is_reported_by_tick():
    host = PrimaryHost(HostOptions(reorder_timeout_ms=500))
    _born(host)
    host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(3), 10)
    assert host.tick(400).rebirths == []
    out = host.tick(510)
    assert len(out.rebirths) == 1 and len(out.readings) == 1


def test_data_before_birth_requests_a_rebirth_and_dead_letters_the_payload():
    host = _host()
    raw = _ddata(7)
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", raw, 3)
    assert [r.node for r in out.rebirths] == [NODE]
    assert [e.kind for e in out.events] == [LifecycleKind.REBIRTH_REQUESTED]
    assert out.dead_letters[0].raw == raw and "before NBIRTH" in out.dead_letters[0].reason
    # Requests are throttled until the node had a chance to answer.
    assert host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", raw, 4).rebirths == []


def test_device_data_before_its_dbirth_requests_a_rebirth():
    host = _host()
    host.handle(f"{BASE}/NBIRTH/{NODE}", _nbirth(1), 1)
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(1), 2)
    assert len(out.rebirths) == 1 and "before DBIRTH" in out.dead_letters[0].reason


def test_ndeath_of_an_older_session_is_ignored():
    host = _host()
    _born(host, bd_seq=4)
    out = host.handle(f"{BASE}/NDEATH/{NODE}", _ndeath(3), 50)
    assert out.events == [] and host.is_online(GROUP, NODE, DEVICE)


def test_ndeath_of_the_current_session_kills_the_node_and_marks_its_devices_stale():
    host = _host()
    _born(host, bd_seq=4)
    out = host.handle(f"{BASE}/NDEATH/{NODE}", _ndeath(4), 50)
    death, stale = out.events
    assert (death.kind, death.bd_seq, death.event_time_ms) == (LifecycleKind.DEATH, 4, 50)
    assert stale.kind is LifecycleKind.STALE and stale.asset == "plant1/line1/pump-02"
    assert stale.event_time_ms == 50 and stale.receive_time_ms == 50  # the host's receipt time
    assert not host.is_online(GROUP, NODE)
    # A new session (bdSeq per CONNECT) brings it back.
    _born(host, bd_seq=5)
    assert host.is_online(GROUP, NODE, DEVICE)


def test_ddeath_marks_only_that_device_stale():
    host = _host()
    _born(host)
    out = host.handle(
        f"{BASE}/DDEATH/{NODE}/{DEVICE}", encode_payload([], seq=2, timestamp_ms=9), 60
    )
    assert [e.kind for e in out.events] == [LifecycleKind.DEATH, LifecycleKind.STALE]
    assert host.is_online(GROUP, NODE) and not host.is_online(GROUP, NODE, DEVICE)


def test_historical_values_flow_with_their_timestamp_and_uncertain_quality():
    host = _host()
    _born(host)
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(2, 50.0, is_historical=True), 9)
    (reading,) = out.readings
    assert reading.quality is Quality.UNCERTAIN and reading.event_time_ms == 5002


def test_garbage_unknown_alias_and_wrong_type_are_dead_letters_and_the_host_continues():
    host = _host()
    _born(host)
    garbage = b"\xff\xfe not protobuf"
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", garbage, 5)
    assert out.dead_letters[0].raw == garbage and out.dead_letters[0].origin.endswith(DEVICE)
    unknown = encode_payload([Metric("x", DataType.DOUBLE, 1.0, alias=99)], seq=2, timestamp_ms=1)
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", unknown, 6)
    assert "unknown alias 99" in out.dead_letters[0].reason and len(out.rebirths) == 1
    wrong = encode_payload([Metric("x", DataType.STRING, "hot", alias=1)], seq=3, timestamp_ms=1)
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", wrong, 7)
    assert "string_value" in out.dead_letters[0].reason and out.readings == []
    assert len(host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(4), 8).readings) == 1


def test_state_and_command_topics_are_not_data():
    host = _host()
    assert host.handle("spBv1.0/STATE/plantlake-host", b'{"online": true}', 1).dead_letters == []
    out = host.handle(f"{BASE}/NCMD/{NODE}", b"\x00", 1)
    assert out.dead_letters == [] and out.rebirths == []
    assert host.handle("spBv1.0/plant1/BOGUS/x", b"", 1).dead_letters[0].reason


def test_a_metric_stamped_in_nanoseconds_is_a_dead_letter_naming_the_time():
    # Sparkplug timestamps are uint64 and a device may send nanoseconds; such a time cannot
    # reach the lake (it overflowed bronze's timestamp conversion).
    host = _host()
    _born(host)
    nanos = 1_767_225_600_000 * 1_000_000
    stamped = Metric(TEMP.name, TEMP.datatype, 56.0, alias=1, timestamp_ms=nanos)
    good = Metric(PRES.name, PRES.datatype, 6.1, alias=2, timestamp_ms=5003)
    raw = encode_payload([stamped, good], seq=2, timestamp_ms=5002)
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", raw, 99)
    assert [(r.sensor, r.event_time_ms) for r in out.readings] == [("discharge_pressure", 5003)]
    (letter,) = out.dead_letters
    assert letter.raw == raw
    assert f"timestamp {nanos} is not an epoch-millisecond time (1970 to 2100)" in letter.reason


def test_a_metric_name_or_value_that_is_not_utf8_is_a_dead_letter_not_a_crash():
    """Found by the fuzz (tests/unit/test_fuzz_sparkplug.py): proto2 strings are not checked,
    so protobuf hands invalid UTF-8 over as bytes, and the host raised a TypeError."""
    host = _host()
    _born(host)
    good = Metric(TEMP.name, TEMP.datatype, 56.0, alias=1, timestamp_ms=5003)
    raw = encode_payload([Metric("zz", DataType.DOUBLE, 1.0, timestamp_ms=5003), good],
                         seq=2, timestamp_ms=5003)  # fmt: skip
    raw = raw.replace(b"zz", b"\xff\xfe")
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", raw, 99)
    assert [r.value for r in out.readings] == [56.0]  # the good metric of the payload still lands
    assert "not UTF-8" in out.dead_letters[0].reason and out.dead_letters[0].raw == raw


def test_an_infinite_value_is_a_dead_letter_not_a_reading():
    """Found by the fuzz: a float overflow (inf) became a reading that bronze then refused."""
    host = _host()
    _born(host)
    out = host.handle(f"{BASE}/DDATA/{NODE}/{DEVICE}", _ddata(2, float("inf")), 99)
    assert out.readings == []
    assert "bearing_temperature" in out.dead_letters[0].reason
    assert "inf" in out.dead_letters[0].reason
