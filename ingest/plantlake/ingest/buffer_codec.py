"""How the edge buffer packs a batch of records into one SQLite row (ingest layer, pure).

One row per append, not per record: SQLite's per-row work (B-tree inserts, the deletes after
Kafka's acknowledgement, the WAL pages both write) was most of the durable edge path's time.
A batch is the topics it uses, then three arrays (per record: topic index as a little-endian
uint16, key and value lengths as uint32), then the keys, then the values, back to back. Packing
and unpacking stay in C loops (array, bytes.join, accumulate) rather than a Python loop over
struct calls.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from itertools import accumulate

import orjson

_LITTLE = sys.byteorder == "little"


def _le(values: array) -> bytes:
    if not _LITTLE:
        values.byteswap()
    return values.tobytes()


def _from_le(kind: str, data: bytes | memoryview) -> array:
    values = array(kind)
    values.frombytes(data)
    if not _LITTLE:
        values.byteswap()
    return values


def encode_batch(rows: Sequence[tuple[str, bytes, bytes]]) -> tuple[str, bytes]:
    """(topics as JSON, body) for (topic, key, value) rows."""
    topics: dict[str, int] = {}
    index = array("H", (topics.setdefault(t, len(topics)) for t, _, _ in rows))
    keys = [k for _, k, _ in rows]
    values = [v for _, _, v in rows]
    body = b"".join((
        _le(index), _le(array("I", map(len, keys))), _le(array("I", map(len, values))),
        *keys, *values,
    ))  # fmt: skip
    return orjson.dumps(list(topics)).decode(), body


def decode_batch(topics: str, body: bytes, count: int) -> list[tuple[str, bytes, bytes]]:
    """The (topic, key, value) rows of a batch `encode_batch` packed."""
    names = orjson.loads(topics)
    view = memoryview(body)
    index = _from_le("H", view[: 2 * count])
    key_lengths = _from_le("I", view[2 * count : 6 * count])
    value_lengths = _from_le("I", view[6 * count : 10 * count])
    key_ends = list(accumulate(key_lengths, initial=10 * count))
    value_ends = list(accumulate(value_lengths, initial=key_ends[-1]))
    return [
        (names[index[i]], body[key_ends[i] : key_ends[i + 1]],
         body[value_ends[i] : value_ends[i + 1]])
        for i in range(count)
    ]  # fmt: skip
