"""The Modbus register map as configuration: YAML in, validated `RegisterTag`s out, plus the simulated plant's map (ingest layer).

File layout (addresses are 0-based protocol addresses)::

    devices:
      - asset: plant1/line1/press-01
        device_id: 1
        tags:
          - {sensor: hydraulic_pressure, table: holding, address: 0, type: float32,
             order: CDAB, unit: bar, poll: fast}
          - {sensor: bearing_temperature, table: input, address: 10, type: int16,
             scale: 0.1, unit: degC, poll: slow}
          - {sensor: running, table: coil, address: 0, type: bool, unit: ""}

Reading the file and unpacking the mapping are separate so the unpacking is tested without files.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plantlake.core.errors import ConfigError
from plantlake.core.plant import Asset, Plant
from plantlake.ingest.modbus.registers import (
    ByteOrder,
    PollClass,
    RegisterTag,
    RegisterType,
    Table,
)


@dataclass(frozen=True)
class RegisterMap:
    """All tags an edge poller reads, over every device behind one Modbus TCP endpoint."""

    tags: tuple[RegisterTag, ...]

    def devices(self) -> dict[int, str]:
        """Unit id -> asset path."""
        return {tag.device_id: tag.asset for tag in self.tags}

    def for_poll(self, poll: PollClass) -> tuple[RegisterTag, ...]:
        return tuple(tag for tag in self.tags if tag.poll is poll)

    def tag(self, asset: str, sensor: str) -> RegisterTag:
        for tag in self.tags:
            if tag.asset == asset and tag.sensor == sensor:
                return tag
        raise KeyError(f"no register tag for {asset} {sensor}")


class _TagEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sensor: str = Field(min_length=1)
    table: Table
    address: int
    type: RegisterType
    order: ByteOrder = ByteOrder.ABCD
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    poll: PollClass = PollClass.FAST


class _DeviceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    asset: str = Field(min_length=1)
    device_id: int
    tags: list[_TagEntry] = Field(min_length=1)


class _MapFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: list[_DeviceEntry] = Field(min_length=1)


def load_register_map(path: Path) -> RegisterMap:
    """Read and validate a register map YAML file; raises ConfigError naming the file and entry."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"Cannot read the Modbus register map {path}: {exc}.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"The Modbus register map {path} is not valid YAML: {exc}") from exc
    return parse_register_map(data, source=str(path))


def parse_register_map(data: Any, *, source: str = "<register map>") -> RegisterMap:
    """Unpack a mapping (as loaded from YAML) into a RegisterMap; raises ConfigError naming the entry."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping with a 'devices' list, got {data!r}.")
    try:
        parsed = _MapFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _describe_location(data, err["loc"])
        raise ConfigError(
            f"{source}: {where}: {err['msg']}.",
            hint="Fix the entry in the register map and restart the poller.",
        ) from exc
    tags: list[RegisterTag] = []
    for i, device in enumerate(parsed.devices):
        for j, entry in enumerate(device.tags):
            try:
                tags.append(RegisterTag(asset=device.asset, device_id=device.device_id,
                                        **entry.model_dump()))  # fmt: skip
            except ValueError as exc:
                where = f"devices[{i}] ({device.asset}) tags[{j}] ({entry.sensor})"
                raise ConfigError(f"{source}: {where}: {exc}.") from exc
    _check_consistent(tags, source)
    return RegisterMap(tuple(tags))


def _describe_location(data: Mapping, loc: tuple) -> str:
    """`devices[2] (plant1/line1/press-01) tags[1] (flow).type` from a pydantic error location."""
    parts: list[str] = []
    node: Any = data
    for key in loc:
        if isinstance(key, int):
            parts[-1] += f"[{key}]"
            node = node[key] if isinstance(node, list) and key < len(node) else None
            name = (node.get("asset") or node.get("sensor")) if isinstance(node, Mapping) else None
            if name:
                parts[-1] += f" ({name})"
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, Mapping) else None
    return " ".join(parts) or "top level"


def _check_consistent(tags: list[RegisterTag], source: str) -> None:
    """Map-wide rules: one asset per unit id, each sensor once, no two tags sharing a register."""
    unit_of: dict[str, int] = {}
    asset_of: dict[int, str] = {}
    seen: set[tuple[str, str]] = set()
    by_table: dict[tuple[int, Table], list[RegisterTag]] = defaultdict(list)
    for tag in tags:
        if unit_of.setdefault(tag.asset, tag.device_id) != tag.device_id:
            raise ConfigError(f"{source}: asset {tag.asset} appears under two device ids.")
        if asset_of.setdefault(tag.device_id, tag.asset) != tag.asset:
            raise ConfigError(
                f"{source}: device_id {tag.device_id} is used by both "
                f"{asset_of[tag.device_id]} and {tag.asset}; use one unit id per asset."
            )
        if (tag.asset, tag.sensor) in seen:
            raise ConfigError(f"{source}: {tag.asset} {tag.sensor} is mapped twice.")
        seen.add((tag.asset, tag.sensor))
        by_table[(tag.device_id, tag.table)].append(tag)
    for (_, table), members in by_table.items():
        members.sort(key=lambda t: t.address)
        for before, after in zip(members, members[1:], strict=False):
            if after.address < before.end:
                raise ConfigError(
                    f"{source}: {after.asset} {after.sensor} ({table} {after.address}) overlaps "
                    f"{before.sensor} ({table} {before.address}..{before.end - 1})."
                )


def dump_register_map(register_map: RegisterMap) -> str:
    """The map as YAML in the layout `load_register_map` reads (e.g. to hand-edit a generated map)."""
    devices: dict[int, dict] = {}
    for tag in register_map.tags:
        device = devices.setdefault(
            tag.device_id, {"asset": tag.asset, "device_id": tag.device_id, "tags": []}
        )
        entry = {"sensor": tag.sensor, "table": str(tag.table), "address": tag.address,
                 "type": str(tag.type), "order": str(tag.order), "scale": tag.scale,
                 "offset": tag.offset, "unit": tag.unit, "poll": str(tag.poll)}  # fmt: skip
        device["tags"].append(entry)
    return yaml.safe_dump({"devices": list(devices.values())}, sort_keys=False)


# The simulated plant's devices cycle through the four float32 byte orders, so a poller that
# gets any one of them wrong sees garbage on some asset.
_ORDERS = (ByteOrder.ABCD, ByteOrder.CDAB, ByteOrder.BADC, ByteOrder.DCBA)


def plant_register_map(plant: Plant) -> RegisterMap:
    """The register map of the simulated plant's Modbus assets: unit ids 1..N in plant order.

    Per asset: analog signals as float32 holding registers from 0 in the device's byte order;
    speed as uint16 x0.1 rpm and bearing temperature as int16 x0.1 in input registers (slow
    poll, at 10 so a batched read skips nothing it needs); the running state as coil 0.
    """
    tags: list[RegisterTag] = []
    for index, asset in enumerate(plant.by_protocol("modbus")):
        tags.extend(_asset_tags(asset, device_id=index + 1, order=_ORDERS[index % 4]))
    return RegisterMap(tuple(tags))


class _CommonFields(TypedDict):
    """The `RegisterTag` fields every tag of one sensor shares (typed, so `**` keeps them)."""

    asset: str
    sensor: str
    device_id: int
    unit: str | None


def _asset_tags(asset: Asset, *, device_id: int, order: ByteOrder) -> list[RegisterTag]:
    tags = []
    next_float = 0
    for sensor in asset.sensors:
        common: _CommonFields = {"asset": asset.path, "sensor": sensor.name,
                                 "device_id": device_id, "unit": sensor.unit}  # fmt: skip
        if sensor.quantity == "state":
            tag = RegisterTag(table=Table.COIL, address=0, type=RegisterType.BOOL, **common)
        elif sensor.quantity == "speed":
            tag = RegisterTag(table=Table.INPUT, address=0, type=RegisterType.UINT16,
                              scale=0.1, **common)  # fmt: skip
        elif sensor.quantity == "temperature":
            tag = RegisterTag(table=Table.INPUT, address=10, type=RegisterType.INT16,
                              scale=0.1, poll=PollClass.SLOW, **common)  # fmt: skip
        else:
            tag = RegisterTag(table=Table.HOLDING, address=next_float, type=RegisterType.FLOAT32,
                              order=order, **common)  # fmt: skip
            next_float += 2
        tags.append(tag)
    return tags
