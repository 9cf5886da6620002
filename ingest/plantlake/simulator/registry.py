"""The simulated plant's asset registry, as registry entries a site would write for it (simulator).

Every sensor of every asset is an entry from COMMISSIONED_BEFORE the plant's start on, and each
high-rate sensor's edge window features (`sensor.feature`) are entries of their own; REMOUNTS
split a sensor's validity in two. Device-side units and addresses are those the simulated device
servers use: OPC-UA string NodeIds, Modbus unit:table:address from the plant's register map,
Sparkplug group/edge_node/device/metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from plantlake.core.plant import Asset, Plant, Sensor
from plantlake.core.registry_entries import RegistryEntry
from plantlake.ingest.modbus.register_map import RegisterMap, plant_register_map
from plantlake.ingest.opcua.model import SensorVariable
from plantlake.ingest.sparkplug.topics import GATEWAY_SUFFIX

# Entries start this long before the plant's start, so a backfill still finds them.
COMMISSIONED_BEFORE = timedelta(days=365)
# The namespace index the simulated OPC-UA server gets for its own namespace: asyncua holds 0
# (the OPC UA namespace) and 1 (the server's URI), and the plant's is the first registered.
OPCUA_NAMESPACE_INDEX = 2
WINDOW_PROTOCOL = "daq"


@dataclass(frozen=True)
class Remount:
    """A sensor moved from one machine to another at `after` past the plant's start.

    Until then the registry classifies the sensor (and its window features) as `before`,
    afterwards as the asset's own kind: two entries with adjacent validity intervals.
    """

    asset: str
    sensor: str
    before: str
    after: timedelta


# The deliberate validity change: pump-02's accelerometer sat on its drive motor's bearing
# housing for the first week and was then remounted on the pump casing.
REMOUNTS: tuple[Remount, ...] = (
    Remount("plant1/line1/pump-02", "vibration", before="motor", after=timedelta(days=7)),
)


def feature_quantity(feature: str) -> str:
    """Quantity of an edge window feature: rms/peak in mm/s, crest a ratio, bands an energy."""
    if feature == "crest":
        return "ratio"
    if feature.startswith("band_"):
        return "energy"
    return "vibration"


@dataclass(frozen=True)
class _Signal:
    sensor: str
    quantity: str
    unit: str | None
    protocol: str
    address: str | None


def _address(asset: Asset, sensor: Sensor, registers: RegisterMap) -> str | None:
    if asset.protocol == "opcua":
        return SensorVariable(asset, sensor).node_id(OPCUA_NAMESPACE_INDEX).to_string()
    if asset.protocol == "modbus":
        tag = registers.tag(asset.path, sensor.name)
        return f"{tag.device_id}:{tag.table}:{tag.address}"
    if asset.protocol == "sparkplug":
        # One gateway per line; devices are the asset names (plantlake.ingest.sparkplug.topics).
        return f"{asset.site}/{asset.line}{GATEWAY_SUFFIX}/{asset.name}/{sensor.name}"
    return None


def _signals(asset: Asset, features: Sequence[str], registers: RegisterMap) -> list[_Signal]:
    """Every signal an asset emits, window features included."""
    signals = []
    for sensor in asset.sensors:
        unit = sensor.unit or None
        # High-rate sensors reach the lake as window features, and raw during a passthrough.
        signals.append(_Signal(sensor.name, sensor.quantity, unit, asset.protocol,
                               _address(asset, sensor, registers)))  # fmt: skip
        if not sensor.rate_hz:
            continue
        for feature in features:
            quantity = feature_quantity(feature)
            # rms and peak are in the sensor's unit; crest factor and band energies have none.
            signals.append(_Signal(f"{sensor.name}.{feature}", quantity,
                                   unit if quantity == sensor.quantity else None,
                                   WINDOW_PROTOCOL, None))  # fmt: skip
    return signals


def plant_registry_entries(plant: Plant, features: Sequence[str]) -> list[RegistryEntry]:
    """The registry of the simulated plant, in plant order (see REMOUNTS for the change).

    `features` are the window features the edge computes for each high-rate sensor
    (`plantlake.ingest.filters.window_feature_names`). Per (asset, sensor) the validity
    intervals are adjacent and never overlap; valid_to None = open.
    """
    start = datetime.fromtimestamp(plant.start_ms / 1000, tz=UTC)
    commissioned = start - COMMISSIONED_BEFORE
    remounts = {(r.asset, r.sensor): r for r in REMOUNTS}
    registers = plant_register_map(plant)
    entries: list[RegistryEntry] = []
    for asset in plant.assets:
        for signal in _signals(asset, features, registers):
            fields = {
                "asset": asset.path, "sensor": signal.sensor, "asset_class": asset.kind,
                "quantity": signal.quantity, "site": asset.site, "line": asset.line,
                "valid_from": commissioned, "valid_to": None, "unit": signal.unit,
                "protocol": signal.protocol, "address": signal.address,
            }  # fmt: skip
            remount = remounts.get((asset.path, signal.sensor.split(".")[0]))
            if remount is None:
                entries.append(RegistryEntry.model_validate(fields))
                continue
            moved = start + remount.after
            entries += [
                RegistryEntry.model_validate({**fields, "asset_class": remount.before,
                                              "valid_to": moved}),
                RegistryEntry.model_validate({**fields, "valid_from": moved}),
            ]  # fmt: skip
    return entries
