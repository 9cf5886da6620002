"""Modbus register tags, value encoding/decoding and read planning: pure logic, no sockets (ingest layer).

Addresses are the 0-based protocol addresses that go on the wire (holding register 0 is what
the "40001" notation calls the first holding register). Byte orders name the four bytes of the
big-endian IEEE 754 float `A B C D` in the order they travel: `ABCD` is plain big-endian,
`CDAB` swaps the two registers, `BADC` swaps the bytes inside each register and `DCBA` is fully
little-endian. pymodbus's `convert_from_registers` can only reverse whole registers, so the two
byte-swapped orders are done here with `struct` for all four, one code path.
"""

from __future__ import annotations

import math
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

# The Modbus application protocol caps one read at 125 registers (FC 3/4) and 2000 coils (FC 1).
MAX_READ_REGISTERS = 125
MAX_READ_COILS = 2000
# Integer registers cannot carry NaN; like SunSpec, the all-ones uint16 and the most negative
# int16 mean "no valid value", so a device can still report a failed measurement.
UINT16_NAN = 0xFFFF
INT16_NAN = -0x8000


class Table(StrEnum):
    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"

    @property
    def function_code(self) -> int:
        return {"holding": 3, "input": 4, "coil": 1}[self.value]

    @property
    def max_read(self) -> int:
        return MAX_READ_COILS if self is Table.COIL else MAX_READ_REGISTERS


class RegisterType(StrEnum):
    FLOAT32 = "float32"
    UINT16 = "uint16"
    INT16 = "int16"
    BOOL = "bool"

    @property
    def width(self) -> int:
        """Registers (or coils) one value occupies."""
        return 2 if self is RegisterType.FLOAT32 else 1


class ByteOrder(StrEnum):
    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"


class PollClass(StrEnum):
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True)
class RegisterTag:
    """Where one sensor of one asset lives on a Modbus device, and how to turn it into a value.

    `value = raw * scale + offset` for every numeric type; `unit` is the unit of that value.
    Raises ValueError on an impossible combination (a coil that is not bool, an address past
    65535, a zero scale).
    """

    asset: str
    sensor: str
    device_id: int
    table: Table
    address: int
    type: RegisterType
    order: ByteOrder = ByteOrder.ABCD
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    poll: PollClass = PollClass.FAST

    def __post_init__(self) -> None:
        if not 1 <= self.device_id <= 247:
            raise ValueError(f"device_id {self.device_id} is outside the unit ids 1..247")
        if not 0 <= self.address <= 0xFFFF - self.width + 1:
            raise ValueError(f"address {self.address} is outside 0..65535 for a {self.type}")
        if (self.table is Table.COIL) != (self.type is RegisterType.BOOL):
            raise ValueError(
                f"a {self.type} cannot live in the {self.table} table (coils are bool)"
            )
        if self.scale == 0 or not math.isfinite(self.scale) or not math.isfinite(self.offset):
            raise ValueError(
                f"scale {self.scale} / offset {self.offset} must be finite, scale != 0"
            )

    @property
    def width(self) -> int:
        return self.type.width

    @property
    def end(self) -> int:
        """One past the last register (or coil) of this tag."""
        return self.address + self.width


def encode_float32(value: float, order: ByteOrder | str) -> tuple[int, int]:
    """Two registers carrying `value` as an IEEE 754 float32 in the given byte order."""
    wire = _permute(struct.pack(">f", value), "ABCD", ByteOrder(order))
    return (wire[0] << 8) | wire[1], (wire[2] << 8) | wire[3]


def decode_float32(regs: Sequence[int], order: ByteOrder | str) -> float:
    """The float32 carried by two registers in the given byte order."""
    if len(regs) != 2:
        raise ValueError(f"a float32 needs 2 registers, got {len(regs)}")
    wire = struct.pack(">HH", regs[0], regs[1])
    return struct.unpack(">f", _permute(wire, ByteOrder(order), "ABCD"))[0]


def _permute(data: bytes, source: str, target: str) -> bytes:
    """Reorder four bytes labelled by `source` into the labelling `target`."""
    return bytes(data[source.index(label)] for label in target)


def scale_registers(regs: Sequence[int], tag: RegisterTag) -> float:
    """The engineering value of a uint16/int16 register: `raw * scale + offset`; NaN for the sentinel."""
    if len(regs) != 1:
        raise ValueError(f"{tag.type} needs 1 register, got {len(regs)}")
    raw = regs[0] & 0xFFFF
    if tag.type is RegisterType.INT16:
        raw = raw - 0x10000 if raw & 0x8000 else raw
        if raw == INT16_NAN:
            return math.nan
    elif tag.type is RegisterType.UINT16:
        if raw == UINT16_NAN:
            return math.nan
    else:
        raise ValueError(f"scale_registers takes uint16/int16 tags, not {tag.type}")
    return raw * tag.scale + tag.offset


def unscale_value(value: float, tag: RegisterTag) -> int:
    """The register a device holds for `value` (inverse of `scale_registers`), clamped to range."""
    if tag.type is RegisterType.INT16:
        low, high, nan = INT16_NAN + 1, 0x7FFF, INT16_NAN
    elif tag.type is RegisterType.UINT16:
        low, high, nan = 0, UINT16_NAN - 1, UINT16_NAN
    else:
        raise ValueError(f"unscale_value takes uint16/int16 tags, not {tag.type}")
    if not math.isfinite(value):
        return nan & 0xFFFF
    raw = min(max(round((value - tag.offset) / tag.scale), low), high)
    return raw & 0xFFFF


def decode_tag(values: Sequence[int] | Sequence[bool], tag: RegisterTag) -> float:
    """The value of a tag from exactly its registers (or its one coil)."""
    if tag.type is RegisterType.BOOL:
        return 1.0 if values[0] else 0.0
    if tag.type is RegisterType.FLOAT32:
        return decode_float32(values, tag.order) * tag.scale + tag.offset
    return scale_registers(values, tag)


def encode_tag(value: float, tag: RegisterTag) -> list[int] | list[bool]:
    """What a device stores for `value` under `tag`: registers, or one coil."""
    if tag.type is RegisterType.BOOL:
        return [bool(value >= 0.5)]
    if tag.type is RegisterType.FLOAT32:
        return list(encode_float32((value - tag.offset) / tag.scale, tag.order))
    return [unscale_value(value, tag)]


@dataclass(frozen=True)
class ReadRequest:
    """One read of contiguous registers (or coils) of one device, serving one or more tags."""

    device_id: int
    table: Table
    address: int
    count: int
    tags: tuple[RegisterTag, ...]

    def describe(self) -> str:
        return f"unit {self.device_id} {self.table} {self.address}+{self.count}"


def plan_reads(
    tags: Iterable[RegisterTag], *, max_gap: int = 8, batched: bool = True
) -> list[ReadRequest]:
    """Group tags into as few reads as the protocol allows.

    Tags of one device and table are merged while the registers skipped between them are at
    most `max_gap` (reading a few unused registers is cheaper than another round trip) and the
    read stays within 125 registers / 2000 coils. `batched=False` gives one read per tag, the
    naive baseline. Overlapping tags share a read.
    """
    groups: dict[tuple[int, Table], list[RegisterTag]] = defaultdict(list)
    for tag in tags:
        groups[(tag.device_id, tag.table)].append(tag)
    requests: list[ReadRequest] = []
    for (device_id, table), members in sorted(groups.items()):
        members.sort(key=lambda t: (t.address, t.end))
        current: list[RegisterTag] = []
        start = end = 0
        for tag in members:
            fits = (
                batched
                and current
                and tag.address - end <= max_gap
                and max(end, tag.end) - start <= table.max_read
            )
            if fits:
                current.append(tag)
                end = max(end, tag.end)
                continue
            if current:
                requests.append(ReadRequest(device_id, table, start, end - start, tuple(current)))
            current, start, end = [tag], tag.address, tag.end
        if current:
            requests.append(ReadRequest(device_id, table, start, end - start, tuple(current)))
    return requests


def split_response(
    request: ReadRequest, values: Sequence[int] | Sequence[bool]
) -> list[tuple[RegisterTag, float]]:
    """Each tag of `request` with its value, from the registers (or coils) the read returned.

    Raises ValueError if the device returned fewer values than asked for (coil replies are
    padded to whole bytes, so more is normal).
    """
    if len(values) < request.count:
        raise ValueError(
            f"{request.describe()}: got {len(values)} values, asked for {request.count}"
        )
    out = []
    for tag in request.tags:
        first = tag.address - request.address
        out.append((tag, decode_tag(values[first : first + tag.width], tag)))
    return out
