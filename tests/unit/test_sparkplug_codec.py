"""Sparkplug B codec: every datatype survives a round trip; aliases resolve; bad metrics are named."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantlake.core.records import Quality
from plantlake.ingest.sparkplug import sparkplug_b_pb2 as pb
from plantlake.ingest.sparkplug.codec import (
    DataType,
    Metric,
    MetricInfo,
    PayloadError,
    decode_payload,
    encode_payload,
)

EXTREMES = {
    DataType.INT8: (-128, 127),
    DataType.INT16: (-32768, 32767),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT8: (0, 255),
    DataType.UINT16: (0, 65535),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.UINT64: (0, 2**64 - 1),
    DataType.DATETIME: (0, 1_767_225_600_000),
}


def _round_trip(metric: Metric, *, birth: bool = True) -> Metric:
    raw = encode_payload([metric], seq=7, timestamp_ms=1000, birth=birth)
    payload = decode_payload(raw, aliases={})
    assert payload.errors == () and payload.seq == 7 and payload.timestamp_ms == 1000
    return payload.metrics[0]


@pytest.mark.parametrize("datatype", list(EXTREMES))
def test_integer_types_round_trip_at_their_extremes(datatype):
    for value in EXTREMES[datatype]:
        back = _round_trip(Metric("m", datatype, value, alias=1, timestamp_ms=5))
        assert back.value == value and back.datatype is datatype and back.timestamp_ms == 5


@given(st.integers(-(2**31), 2**31 - 1))
def test_int32_round_trips_through_its_unsigned_wire_form(value):
    assert _round_trip(Metric("m", DataType.INT32, value)).value == value


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        (DataType.DOUBLE, 42.125),
        (DataType.FLOAT, 1.5),  # exactly representable in 32 bits
        (DataType.BOOLEAN, True),
        (DataType.BOOLEAN, False),
        (DataType.STRING, "läuft"),
        (DataType.TEXT, "a longer text"),
        (DataType.UUID, "2f1c1f9e-0d7c-4a53-9a56-0b7c6f2b5a1e"),
    ],
)
def test_other_scalar_types_round_trip(datatype, value):
    back = _round_trip(Metric("m", datatype, value, alias=3))
    assert back.value == value and type(back.value) is type(value)


def test_nan_null_unit_quality_and_historical_survive():
    nan = _round_trip(Metric("t", DataType.DOUBLE, math.nan, unit="degF", quality=Quality.BAD))
    assert math.isnan(nan.value) and nan.unit == "degF" and nan.quality is Quality.BAD
    null = _round_trip(Metric("t", DataType.DOUBLE, None, is_historical=True))
    assert null.value is None and null.is_historical


def test_data_carries_aliases_only_and_resolves_through_the_birth_table():
    birth = Metric("bearing_temperature", DataType.DOUBLE, 55.0, alias=9, unit="degC")
    data = encode_payload([Metric("bearing_temperature", DataType.DOUBLE, 56.5, alias=9)],
                          seq=1, timestamp_ms=2000)  # fmt: skip
    wire = pb.Payload.FromString(data).metrics[0]
    assert not wire.HasField("name") and not wire.HasField("datatype")
    aliases = {9: MetricInfo(birth.name, birth.datatype, birth.unit)}
    decoded = decode_payload(data, aliases=aliases).metrics[0]
    assert (decoded.name, decoded.value, decoded.unit) == ("bearing_temperature", 56.5, "degC")
    assert decoded.timestamp_ms == 2000  # falls back to the payload timestamp


def test_unknown_alias_and_wrong_type_are_named_while_the_rest_decode():
    message = pb.Payload(seq=4, timestamp=1)
    message.metrics.add(alias=1, double_value=1.0)
    message.metrics.add(alias=2, string_value="not a double")
    message.metrics.add(alias=77, double_value=3.0)
    aliases = {1: MetricInfo("a", DataType.DOUBLE), 2: MetricInfo("b", DataType.DOUBLE)}
    payload = decode_payload(message.SerializeToString(), aliases=aliases)
    assert [m.name for m in payload.metrics] == ["a"]
    assert payload.unknown_aliases == (77,)
    assert any("'b'" in e and "string_value" in e for e in payload.errors)


def test_garbage_is_a_payload_error():
    with pytest.raises(PayloadError) as info:
        decode_payload(b"\xff\xff\xff\xff garbage", aliases={})
    assert info.value.code == "sparkplug-payload"
