"""The lake contract's column types as Arrow types, for tables not written yet (lake reader layer).

A contract states each column as Spark SQL spells it ("bigint", "array<struct<rule:string>>");
the reader answers a missing table with an empty table of these columns, typed as Spark's Delta
tables read in Arrow (a Spark `timestamp` is microseconds in UTC).
"""

from __future__ import annotations

import pyarrow as pa

from plantlake.core.contracts import TableRef
from plantlake.core.errors import ContractError

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "long": pa.int64(),
    "double": pa.float64(),
    "float": pa.float32(),
    "boolean": pa.bool_(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
}


def arrow_type(spark_type: str) -> pa.DataType:
    """The Arrow type of a Spark SQL type name; ContractError for one the lake never uses."""
    parsed, rest = _parse(spark_type.replace(" ", ""), spark_type)
    if rest:
        raise ContractError(f"Unreadable column type {spark_type!r} (left over: {rest!r}).")
    return parsed


def contract_schema(ref: TableRef) -> pa.Schema:
    """The table's columns, in contract order, as an Arrow schema."""
    return pa.schema(
        [pa.field(name, arrow_type(kind)) for name, kind in (c.split(" ", 1) for c in ref.columns)]
    )


def empty_table(ref: TableRef) -> pa.Table:
    return contract_schema(ref).empty_table()


def _parse(text: str, whole: str) -> tuple[pa.DataType, str]:
    """One type from the start of `text`, and what follows it."""
    for opener, build in (("array<", _array), ("map<", _map), ("struct<", _struct)):
        if text.startswith(opener):
            return build(text[len(opener) :], whole)
    end = min((i for i in (text.find(","), text.find(">")) if i >= 0), default=len(text))
    name = text[:end].lower()
    if name not in _SCALARS:
        raise ContractError(f"Unknown column type {name!r} in {whole!r}.")
    return _SCALARS[name], text[end:]


def _closing(rest: str, whole: str) -> str:
    if not rest.startswith(">"):
        raise ContractError(f"Unbalanced <> in column type {whole!r}.")
    return rest[1:]


def _array(text: str, whole: str) -> tuple[pa.DataType, str]:
    item, rest = _parse(text, whole)
    return pa.list_(pa.field("element", item)), _closing(rest, whole)


def _map(text: str, whole: str) -> tuple[pa.DataType, str]:
    key, rest = _parse(text, whole)
    if not rest.startswith(","):
        raise ContractError(f"A map needs a key and a value type: {whole!r}.")
    value, rest = _parse(rest[1:], whole)
    return pa.map_(key, value), _closing(rest, whole)


def _struct(text: str, whole: str) -> tuple[pa.DataType, str]:
    fields = []
    rest = text
    while True:
        name, sep, rest = rest.partition(":")
        if not sep or not name:
            raise ContractError(f"A struct field needs name:type in {whole!r}.")
        kind, rest = _parse(rest, whole)
        fields.append(pa.field(name, kind))
        if rest.startswith(","):
            rest = rest[1:]
            continue
        return pa.struct(fields), _closing(rest, whole)
