"""Issue 13 fuzz: whatever a Sparkplug node sends (overflowing numbers, inf and NaN, wrong types,
deep property nesting, thousands of metrics, odd topic names, bytes that are not protobuf at
all), the primary host never raises; what it turns into readings is a record bronze accepts,
and a message that yields nothing usable leaves a dead letter or a rebirth request."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantlake.core.contracts import record_errors
from plantlake.ingest.sparkplug import sparkplug_b_pb2 as pb
from plantlake.ingest.sparkplug.codec import DataType, Metric, encode_payload
from plantlake.ingest.sparkplug.host import PrimaryHost
from plantlake.ingest.sparkplug.topics import topic_name

NOW = 1_767_225_600_000
DATATYPES = [pb.Int8, pb.Int16, pb.Int32, pb.Int64, pb.UInt8, pb.UInt16, pb.UInt32, pb.UInt64,
             pb.Float, pb.Double, pb.Boolean, pb.String, pb.DateTime, pb.Text, pb.UUID,
             0, 13, 17, 19, 99, 2**31 - 1]  # fmt: skip
uint64 = st.one_of(st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1]),
                   st.integers(0, 2**64 - 1))  # fmt: skip
uint32 = st.one_of(st.sampled_from([0, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
doubles = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -0.0]))  # fmt: skip
text = st.one_of(st.text(max_size=30), st.sampled_from(["", "\x00", "a/b/#", "+", "é" * 200]))
# Timestamps: none, plausible, nanoseconds, microseconds, the largest a uint64 holds.
stamps = st.one_of(st.none(), st.sampled_from([NOW, NOW * 1000, NOW * 1_000_000, 2**64 - 1, 1]),
                   uint64)  # fmt: skip


# The value field each born alias (1..6) expects; a metric uses it half the time.
ALIAS_FIELDS = {1: "double_value", 2: "float_value", 3: "long_value", 4: "long_value",
                5: "boolean_value", 6: "string_value"}  # fmt: skip


def _value(metric, data):
    expected = ALIAS_FIELDS.get(metric.alias) if metric.HasField("alias") else None
    field = data.draw(st.sampled_from(["int_value", "long_value", "float_value", "double_value",
                                       "boolean_value", "string_value", "bytes_value", None]))  # fmt: skip
    if expected and data.draw(st.booleans()):
        field = expected
    if field == "int_value":
        metric.int_value = data.draw(uint32)
    elif field == "long_value":
        metric.long_value = data.draw(uint64)
    elif field in ("float_value", "double_value"):
        setattr(metric, field, data.draw(doubles))
    elif field == "boolean_value":
        metric.boolean_value = data.draw(st.booleans())
    elif field == "string_value":
        metric.string_value = data.draw(text)
    elif field == "bytes_value":
        metric.bytes_value = data.draw(st.binary(max_size=40))
    else:
        metric.is_null = data.draw(st.booleans())


def _properties(target, data, depth: int):
    """A PropertySet, nested `depth` levels through property-set values."""
    for _ in range(data.draw(st.integers(0, 3))):
        target.keys.append(data.draw(st.sampled_from(["engUnit", "Quality", "x", ""])))
        prop = target.values.add(type=data.draw(st.sampled_from([pb.String, pb.Int32, 20, 0])))
        kind = data.draw(st.sampled_from(["string", "int", "set"]))
        if kind == "string":
            prop.string_value = data.draw(text)
        elif kind == "int":
            prop.int_value = data.draw(uint32)
        elif depth > 0:
            _properties(prop.propertyset_value, data, depth - 1)


def _payload(data, *, names: bool, seq: int | None = None) -> bytes:
    """A payload of hostile metrics: by name (births) or by the born aliases 1..6 (data)."""
    payload = pb.Payload()
    if data.draw(st.booleans()):
        payload.timestamp = data.draw(st.one_of(st.just(NOW), uint64))
    if seq is not None and data.draw(st.integers(0, 9)):  # mostly in sequence
        payload.seq = seq
    elif data.draw(st.booleans()):
        payload.seq = data.draw(st.sampled_from([0, 1, 255, 256, 2**64 - 1]))
    count = data.draw(st.sampled_from([0, 1, 3, 10, 5000]))
    for i in range(count):
        metric = payload.metrics.add()
        if names or not data.draw(st.integers(0, 4)) or i >= 10:
            metric.name = data.draw(text) if i < 10 else f"m{i}"
        if not names and i < 10:
            metric.alias = data.draw(st.one_of(st.integers(1, 6), st.sampled_from([0, 2**64 - 1])))
        if names or data.draw(st.integers(0, 3)) == 0:
            metric.datatype = data.draw(st.sampled_from(DATATYPES))
        stamp = data.draw(stamps) if i < 10 else None
        if stamp is not None:
            metric.timestamp = stamp
        metric.is_historical = data.draw(st.booleans()) if i < 10 else False
        if i < 10:
            _value(metric, data)
            if data.draw(st.booleans()):
                _properties(metric.properties, data, depth=data.draw(st.sampled_from([0, 2, 40])))
        else:
            metric.datatype = pb.Double
            metric.double_value = float(i)
    raw = payload.SerializeToString()
    mangle = data.draw(st.sampled_from(["none"] * 6 + ["truncate", "flip", "random"]))
    if mangle == "truncate" and raw:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif mangle == "flip" and raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1 :]
    elif mangle == "random":
        raw = data.draw(st.binary(max_size=200))
    return raw


def _births(data) -> tuple[bytes, bytes]:
    """A valid NBIRTH, and a DBIRTH of six metrics (aliases 1..6) with hostile units."""
    node = [
        Metric("bdSeq", DataType.INT64, 0),
        Metric("Node Control/Rebirth", DataType.BOOLEAN, False),
    ]
    kinds = [DataType.DOUBLE, DataType.FLOAT, DataType.INT64, DataType.UINT64, DataType.BOOLEAN,
             DataType.STRING]  # fmt: skip
    device = [
        Metric(f"s{alias}", kind, None, alias=alias, unit=data.draw(st.one_of(
            st.sampled_from(["degC", "bar", "10**10**10", "m/(s", "{" * 500, "", "mm/s"]), text)))
        for alias, kind in enumerate(kinds, start=1)
    ]  # fmt: skip
    return (encode_payload(node, seq=0, timestamp_ms=NOW, birth=True),
            encode_payload(device, seq=1, timestamp_ms=NOW, birth=True))  # fmt: skip


def _carries_something(raw: bytes) -> bool:
    """Not protobuf at all, or a payload with at least one metric."""
    try:
        return len(pb.Payload.FromString(raw).metrics) > 0
    except Exception:
        return True


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_the_host_survives_any_message_and_emits_only_valid_records(data):
    host = PrimaryHost()
    group, node = "plant1", data.draw(st.sampled_from(["gw", "g w", "ü", "x" * 300]))
    device = data.draw(st.sampled_from(["pump", "dev.ice", "ü" * 100]))
    nbirth, dbirth = _births(data)
    host.handle(topic_name(group, "NBIRTH", node), nbirth, NOW)
    host.handle(topic_name(group, "DBIRTH", node, device), dbirth, NOW)
    kinds = data.draw(st.lists(st.sampled_from(["DDATA"] * 6 + ["NBIRTH", "DBIRTH", "NDATA",
                                                "DDEATH", "NDEATH", "NCMD", "STATE"]),
                               min_size=1, max_size=8))  # fmt: skip
    emitted = []
    for n, kind in enumerate(kinds, start=2):
        birth = kind.endswith("BIRTH")
        topic = (f"spBv1.0/STATE/{node}" if kind == "STATE"
                 else topic_name(group, kind, node, device if kind[0] == "D" else None))  # fmt: skip
        raw = _payload(data, names=birth, seq=n % 256)
        handled = host.handle(topic, raw, NOW + n)
        # A message held for reordering comes out when its wait runs out.
        expired = host.tick(NOW + n + 60_000)
        outs = (handled, expired)
        emitted += handled.readings + expired.readings
        if kind in ("NBIRTH", "DBIRTH", "NDATA", "DDATA") and _carries_something(raw):
            # Nothing vanishes: it became readings, a dead letter, an event or a rebirth request.
            assert any(o.readings or o.dead_letters or o.events or o.rebirths for o in outs), kind
        for reading in handled.readings + expired.readings:
            record = reading.to_record()
            assert record_errors(record) == [], (record, record_errors(record))
        for letter in handled.dead_letters + expired.dead_letters:
            assert letter.reason and isinstance(letter.raw, bytes)
    assert all(r.source_protocol == "sparkplug" for r in emitted)
    print("EMITTED", len(emitted))
