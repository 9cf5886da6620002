"""Sparkplug B payload codec: protobuf bytes to typed metrics and back, with aliases (ingest layer, pure).

Scalar datatypes only (Int8..UInt64, Float, Double, Boolean, String, Text, UUID, DateTime);
DataSet, Template, Bytes and arrays are reported as errors, not guessed at. Signed integers travel
as the unsigned two's-complement bit pattern of their width, as in the Tahu reference clients.
Units ride in the birth's metric PropertySet under "engUnit"; a device's quality, when not Good,
rides in DATA under "Quality" as an OPC quality code (192 good, 64 uncertain, 0 bad).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple, TypeAlias

from google.protobuf.message import DecodeError

from plantlake.core.errors import SourceError
from plantlake.core.records import Quality
from plantlake.ingest.sparkplug import sparkplug_b_pb2

# The generated module creates its message classes and enum values at import time, where mypy
# cannot see them (and google.protobuf has no stubs), so they are reached through untyped names.
pb: Any = sparkplug_b_pb2
PbPayload: TypeAlias = Any  # a sparkplug_b_pb2.Payload message
PbMetric: TypeAlias = Any  # a sparkplug_b_pb2.Payload.Metric message

UNIT_PROPERTY = "engUnit"
QUALITY_PROPERTY = "Quality"
_QUALITY_CODES = {Quality.GOOD: 192, Quality.UNCERTAIN: 64, Quality.BAD: 0}


class DataType(IntEnum):
    """The Sparkplug B metric datatypes this codec handles (values from the Tahu schema)."""

    INT8 = pb.Int8
    INT16 = pb.Int16
    INT32 = pb.Int32
    INT64 = pb.Int64
    UINT8 = pb.UInt8
    UINT16 = pb.UInt16
    UINT32 = pb.UInt32
    UINT64 = pb.UInt64
    FLOAT = pb.Float
    DOUBLE = pb.Double
    BOOLEAN = pb.Boolean
    STRING = pb.String
    DATETIME = pb.DateTime
    TEXT = pb.Text
    UUID = pb.UUID


_FIELD = {
    DataType.INT8: "int_value",
    DataType.INT16: "int_value",
    DataType.INT32: "int_value",
    DataType.UINT8: "int_value",
    DataType.UINT16: "int_value",
    DataType.UINT32: "int_value",
    DataType.INT64: "long_value",
    DataType.UINT64: "long_value",
    DataType.DATETIME: "long_value",
    DataType.FLOAT: "float_value",
    DataType.DOUBLE: "double_value",
    DataType.BOOLEAN: "boolean_value",
    DataType.STRING: "string_value",
    DataType.TEXT: "string_value",
    DataType.UUID: "string_value",
}
_DATATYPES = {int(t): t for t in _FIELD}
_SIGNED_BITS = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32, DataType.INT64: 64}
NUMERIC = frozenset(_FIELD) - {DataType.STRING, DataType.TEXT, DataType.UUID}

Value = int | float | bool | str | None


class PayloadError(SourceError):
    """A Sparkplug payload that cannot be decoded at all (not protobuf, or not a Payload)."""

    code = "sparkplug-payload"


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What a birth told us about a metric: the DATA messages carry only its alias."""

    name: str
    datatype: DataType
    unit: str | None = None


class Metric(NamedTuple):
    """One metric value. `name` is resolved through the alias table when decoding DATA.

    A NamedTuple, not a frozen dataclass: it is built once per metric on the hot path, and a
    tuple builds about three times faster.
    """

    name: str
    datatype: DataType
    value: Value
    timestamp_ms: int | None = None
    alias: int | None = None
    unit: str | None = None
    quality: Quality = Quality.GOOD
    is_historical: bool = False


@dataclass(frozen=True, slots=True)
class Payload:
    """A decoded payload. `errors` names each metric that could not be decoded, and why."""

    timestamp_ms: int | None
    seq: int | None
    metrics: tuple[Metric, ...]
    errors: tuple[str, ...] = ()
    unknown_aliases: tuple[int, ...] = ()


def _to_wire(datatype: DataType, value: Value) -> Value:
    bits = _SIGNED_BITS.get(datatype)
    if bits is not None and value < 0:  # type: ignore[operator]
        return value + (1 << bits)  # type: ignore[operator]
    return value


def _from_wire(datatype: DataType, raw: Value) -> Value:
    bits = _SIGNED_BITS.get(datatype)
    if bits is not None:
        raw &= (1 << bits) - 1  # type: ignore[operator]
        if raw >= 1 << (bits - 1):  # type: ignore[operator]
            raw -= 1 << bits  # type: ignore[operator]
    return raw


def encode_payload(
    metrics: Iterable[Metric], *, seq: int | None, timestamp_ms: int, birth: bool = False
) -> bytes:
    """Serialize metrics. A birth carries names, datatypes and units; DATA carries aliases only.

    A metric with no alias is sent by name (Sparkplug allows names in DATA; we use that for
    control metrics such as `Node Control/Rebirth` in NCMD).
    """
    payload = pb.Payload(timestamp=timestamp_ms)
    if seq is not None:
        payload.seq = seq
    for metric in metrics:
        out = payload.metrics.add()
        if birth or metric.alias is None:
            out.name = metric.name
            out.datatype = metric.datatype
        if metric.alias is not None:
            out.alias = metric.alias
        if metric.timestamp_ms is not None:
            out.timestamp = metric.timestamp_ms
        if metric.is_historical:
            out.is_historical = True
        properties: list[tuple[str, int, str, str | int]] = []
        if birth and metric.unit:
            properties.append((UNIT_PROPERTY, pb.String, "string_value", metric.unit))
        if metric.quality is not Quality.GOOD:
            properties.append(
                (QUALITY_PROPERTY, pb.Int32, "int_value", _QUALITY_CODES[metric.quality])
            )
        for key, ptype, field, value in properties:
            out.properties.keys.append(key)
            prop = out.properties.values.add(type=ptype)
            setattr(prop, field, value)
        if metric.value is None:
            out.is_null = True
        else:
            setattr(out, _FIELD[metric.datatype], _to_wire(metric.datatype, metric.value))
    return payload.SerializeToString()


def _properties(metric: PbMetric) -> tuple[str | None, Quality]:
    unit, quality = None, Quality.GOOD
    props = metric.properties
    for key, prop in zip(props.keys, props.values, strict=False):
        if key == UNIT_PROPERTY and prop.HasField("string_value"):
            unit = _text(prop.string_value)
        elif key == QUALITY_PROPERTY:
            code = prop.int_value
            quality = (
                Quality.GOOD if code >= 192 else Quality.UNCERTAIN if code >= 64 else Quality.BAD
            )
    return unit, quality


def _text(value: str | bytes) -> str:
    """A proto2 string as text: invalid UTF-8 (which protobuf hands over as bytes) is replaced,
    so a garbled unit reads as an unknown unit that silver quarantines, not as a crash."""
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def decode_payload(payload: bytes, *, aliases: Mapping[int, MetricInfo]) -> Payload:
    """Decode a Sparkplug B payload, resolving aliases against the birth's table.

    Metrics that cannot be decoded (unknown alias, value field not matching the datatype,
    unsupported datatype) are left out and named in `Payload.errors`; the others still decode.
    Raises PayloadError if the bytes are not a Sparkplug payload at all.
    """
    return decode_message(parse_payload(payload), aliases=aliases)


def parse_payload(payload: bytes) -> PbPayload:
    """The protobuf message (the host reads `seq` before it knows which alias table applies)."""
    try:
        return pb.Payload.FromString(payload)
    except DecodeError as exc:
        raise PayloadError(f"not a Sparkplug B protobuf payload: {exc}") from exc


def decode_message(message: PbPayload, *, aliases: Mapping[int, MetricInfo]) -> Payload:
    """`decode_payload` for an already parsed message."""
    metrics: list[Metric] = []
    errors: list[str] = []
    unknown: list[int] = []
    payload_ts = message.timestamp if message.HasField("timestamp") else None
    # Hot loop (every DATA metric passes here): "" / 0 stand for absent name, datatype and
    # timestamp (none is meaningful in Sparkplug), which saves a HasField call each.
    for m in message.metrics:
        name = m.name
        if type(name) is bytes:  # proto2 strings are not checked: invalid UTF-8 comes as bytes
            errors.append(f"a metric name that is not UTF-8: {name[:60]!r}")
            continue
        info = None
        alias = None
        if m.HasField("alias"):
            alias = m.alias
            info = aliases.get(alias)
        if not name:
            if info is None:
                if alias is None:
                    errors.append("a metric with neither name nor alias")
                else:
                    errors.append(f"unknown alias {alias}")
                    unknown.append(alias)
                continue
            name = info.name
        raw_type = m.datatype
        datatype = _DATATYPES.get(raw_type) if raw_type else info.datatype if info else None
        if datatype is None:
            errors.append(f"metric {name!r}: unsupported or missing datatype {raw_type}")
            continue
        field = m.WhichOneof("value")
        if field is None:
            if not m.is_null:
                errors.append(f"metric {name!r}: no value and not is_null")
                continue
            value: Value = None
        elif field != _FIELD[datatype]:
            errors.append(f"metric {name!r}: {datatype.name} carried in {field}")
            continue
        else:
            value = getattr(m, field)
            if type(value) is bytes:
                errors.append(f"metric {name!r}: a {datatype.name} value that is not UTF-8")
                continue
            if datatype in _SIGNED_BITS:
                value = _from_wire(datatype, value)
        unit = info.unit if info is not None else None
        quality = Quality.GOOD
        if m.HasField("properties"):
            own_unit, quality = _properties(m)
            unit = own_unit if own_unit is not None else unit
        metrics.append(
            Metric(name, datatype, value, m.timestamp or payload_ts, alias, unit, quality,
                   m.is_historical)
        )  # fmt: skip
    return Payload(
        timestamp_ms=payload_ts,
        seq=message.seq if message.HasField("seq") else None,
        metrics=tuple(metrics),
        errors=tuple(errors),
        unknown_aliases=tuple(unknown),
    )
