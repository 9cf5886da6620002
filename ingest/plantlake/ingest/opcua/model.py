"""How plant assets map to an OPC-UA information model and back (ingest layer, pure: no I/O).

Every asset is an object at Objects/Plant/<site>/<line>/<asset>; every sensor is an
AnalogItemType variable under it whose `EngineeringUnits` (EUInformation, UNECE Rec. 20 codes)
carries the unit the device reports and whose `EURange` carries its normal operating range.
The server builds its address space from `address_space_items`; the client maps a browsed path
and its EngineeringUnits back to (asset path, sensor, unit) with `sensor_ref`, and a DataValue to
a canonical `Reading` with `to_reading`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from asyncua import ua

from plantlake.core import unece
from plantlake.core.plant import Asset, Sensor
from plantlake.core.records import Quality, Reading

NAMESPACE_URI = "urn:plantlake:plant"
ROOT = "Plant"
ENGINEERING_UNITS = "EngineeringUnits"
EU_RANGE = "EURange"
# OPC UA Part 8 §5.6.3: EUInformation.NamespaceUri for units coded after UNECE Rec. 20.
UNECE_NAMESPACE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"
PROTOCOL = "opcua"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def eu_information(unit: str) -> ua.EUInformation:
    """The EUInformation a device publishes for `unit`: the UnitId, symbol and name of its UNECE
    code (`unece.code_for_unit`: plantlake's spellings first, so "degC" is CEL). A unit with no code,
    or with several that fit, keeps its name with UnitId -1."""
    code = unece.code_for_unit(unit)
    found = unece.by_code(code) if code is not None else None
    if found is None:
        # Part 8: UnitId -1 means "no UNECE code"; the display name still says what it is.
        return ua.EUInformation(
            NamespaceUri=UNECE_NAMESPACE_URI,
            UnitId=-1,
            DisplayName=ua.LocalizedText(unit),
            Description=ua.LocalizedText(unit),
        )
    return ua.EUInformation(
        NamespaceUri=UNECE_NAMESPACE_URI,
        UnitId=found.unit_id,
        DisplayName=ua.LocalizedText(found.symbol),
        Description=ua.LocalizedText(found.name),
    )


def unit_from_eu(eu: ua.EUInformation | None) -> str | None:
    """The unit a device reports, from its EngineeringUnits; None when the variable has none.

    A UNECE UnitId in the table gives plantlake's unit for the code (`unece.unit_from_code`:
    "degC" for CEL, "kPa" for KPA). A code in the table that has no pint unit gives
    `"UNECE:<code>"` (`unece.unmapped_unit`), which no unit parser accepts, so silver's unit rule
    quarantines the reading with the code in its reason rather than trust pint's reading of the
    symbol (KTN's "kt" would read as a knot). Any other UnitId or namespace keeps the display name.
    """
    if eu is None:
        return None
    found = unece.by_unit_id(eu.UnitId) if eu.NamespaceUri == UNECE_NAMESPACE_URI else None
    if found is not None:
        unit = unece.unit_from_code(found.code)
        return unit if unit is not None else unece.unmapped_unit(found.code)
    return eu.DisplayName.Text if eu.DisplayName and eu.DisplayName.Text is not None else None


def eu_range(sensor: Sensor) -> tuple[float, float]:
    """The normal operating range of a sensor in its device unit (the plant description's);
    spikes fall outside it on purpose."""
    if sensor.quantity == "state":
        return 0.0, 1.0
    return sensor.normal_range


@dataclass(frozen=True)
class SensorRef:
    """What a sensor variable is: the asset path, the sensor name and the unit the device reports."""

    asset: str
    sensor: str
    unit: str | None


@dataclass(frozen=True)
class SensorVariable:
    """One sensor as an OPC-UA variable."""

    asset: Asset
    sensor: Sensor

    @property
    def browse_path(self) -> tuple[str, ...]:
        a = self.asset
        return (ROOT, a.site, a.line, a.name, self.sensor.name)

    @property
    def node_key(self) -> str:
        return f"{self.asset.path}/{self.sensor.name}"

    def node_id(self, ns: int) -> ua.NodeId:
        # String ids from the path stay the same across server restarts, so a client's
        # monitored items and the history tables keyed by node id still match after one.
        return _string_node(self.node_key, ns)


def _string_node(key: str, ns: int) -> ua.NodeId:
    """A string NodeId (asyncua annotates NodeId's fields with its own str and int subclasses)."""
    return ua.NodeId(ua.String(key), ua.Int16(ns))


def sensor_variables(assets: Iterable[Asset]) -> list[SensorVariable]:
    return [SensorVariable(asset, sensor) for asset in assets for sensor in asset.sensors]


def sensor_ref(path: Sequence[str], eu: ua.EUInformation | None) -> SensorRef:
    """Reverse mapping: a browse path below Objects (Plant/site/line/asset/sensor) and the
    variable's EngineeringUnits -> what it measures. Raises ValueError for any other path."""
    if len(path) != 5 or path[0] != ROOT or not all(path):
        raise ValueError(
            f"{'/'.join(path)!r} is not a sensor path {ROOT}/<site>/<line>/<asset>/<sensor>"
        )
    _, site, line, asset, sensor = path
    return SensorRef(asset=f"{site}/{line}/{asset}", sensor=sensor, unit=unit_from_eu(eu))


def _object(
    node_id: ua.NodeId,
    parent: ua.NodeId,
    name: str,
    ns: int,
    *,
    folder: bool,
    reference: int = ua.ObjectIds.Organizes,
) -> ua.AddNodesItem:
    attrs = ua.ObjectAttributes(
        DisplayName=ua.LocalizedText(name), Description=ua.LocalizedText(name), EventNotifier=0
    )
    return ua.AddNodesItem(
        ParentNodeId=parent,
        ReferenceTypeId=ua.NodeId(ua.Int32(reference)),
        RequestedNewNodeId=node_id,
        BrowseName=ua.QualifiedName(name, ns),
        NodeClass=ua.NodeClass.Object,
        NodeAttributes=attrs,
        TypeDefinition=ua.NodeId(
            ua.Int32(ua.ObjectIds.FolderType if folder else ua.ObjectIds.BaseObjectType)
        ),
    )


def _variable(
    node_id: ua.NodeId,
    parent: ua.NodeId,
    name: str,
    ns: int,
    value: ua.Variant,
    *,
    datatype: int,
    prop: bool,
    sampling_ms: float = 0.0,
) -> ua.AddNodesItem:
    access = ua.AccessLevel.CurrentRead.mask
    if not prop:
        access |= ua.AccessLevel.HistoryRead.mask
    attrs = ua.VariableAttributes(
        DisplayName=ua.LocalizedText(name),
        Description=ua.LocalizedText(name),
        Value=value,
        DataType=ua.NodeId(ua.Int32(datatype)),
        ValueRank=ua.ValueRank.Scalar,
        AccessLevel=access,
        UserAccessLevel=access,
        MinimumSamplingInterval=sampling_ms,
        Historizing=not prop,
    )
    return ua.AddNodesItem(
        ParentNodeId=parent,
        ReferenceTypeId=ua.NodeId(
            ua.Int32(ua.ObjectIds.HasProperty if prop else ua.ObjectIds.HasComponent)
        ),
        RequestedNewNodeId=node_id,
        BrowseName=ua.QualifiedName(name, ns if not prop else 0),
        NodeClass=ua.NodeClass.Variable,
        NodeAttributes=attrs,
        TypeDefinition=ua.NodeId(
            ua.Int32(ua.ObjectIds.PropertyType if prop else ua.ObjectIds.AnalogItemType)
        ),
    )


def address_space_items(
    assets: Iterable[Asset], ns: int, *, sampling_ms: float = 0.0
) -> list[ua.AddNodesItem]:
    """AddNodes requests for the plant, parents before children, ready for one AddNodes call."""
    items: list[ua.AddNodesItem] = []
    seen: set[str] = set()
    root = _string_node(ROOT, ns)
    items.append(
        _object(root, ua.NodeId(ua.Int32(ua.ObjectIds.ObjectsFolder)), ROOT, ns, folder=True)
    )
    for asset in assets:
        parent = root
        for key, name in ((asset.site, asset.site), (f"{asset.site}/{asset.line}", asset.line)):
            node = _string_node(key, ns)
            if key not in seen:
                seen.add(key)
                items.append(_object(node, parent, name, ns, folder=True))
            parent = node
        asset_node = _string_node(asset.path, ns)
        items.append(_object(asset_node, parent, asset.name, ns, folder=False))
        for var in sensor_variables([asset]):
            node = var.node_id(ns)
            low, high = eu_range(var.sensor)
            items.append(
                _variable(
                    node,
                    asset_node,
                    var.sensor.name,
                    ns,
                    ua.Variant(0.0, ua.VariantType.Double),
                    datatype=ua.ObjectIds.Double,
                    prop=False,
                    sampling_ms=sampling_ms,
                )
            )
            items.append(
                _variable(
                    _string_node(f"{var.node_key}#{ENGINEERING_UNITS}", ns),
                    node,
                    ENGINEERING_UNITS,
                    ns,
                    ua.Variant(eu_information(var.sensor.unit)),
                    datatype=ua.ObjectIds.EUInformation,
                    prop=True,
                )
            )
            items.append(
                _variable(
                    _string_node(f"{var.node_key}#{EU_RANGE}", ns),
                    node,
                    EU_RANGE,
                    ns,
                    ua.Variant(ua.Range(Low=low, High=high)),
                    datatype=ua.ObjectIds.Range,
                    prop=True,
                )
            )
    return items


def ms_to_datetime(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def datetime_to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:  # OPC-UA DateTime is UTC; a naive value from a peer means UTC
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MS


_STATUS_OF = {
    Quality.GOOD: ua.StatusCodes.Good,
    Quality.UNCERTAIN: ua.StatusCodes.Uncertain,
    # A NaN from the plant is a failed sensor read, not a bad value of a working sensor.
    Quality.BAD: ua.StatusCodes.BadSensorFailure,
}


def status_of(quality: Quality) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(_STATUS_OF[quality]))


def quality_of(status: ua.StatusCode | int | None) -> Quality:
    """Quality from a StatusCode's severity bits (Part 4 §7.39): 00 Good, 01 Uncertain, 1x Bad."""
    code = (
        0
        if status is None
        else (status.value if isinstance(status, ua.StatusCode) else int(status))
    )
    severity = (code >> 30) & 0b11
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.UNCERTAIN
    return Quality.BAD


def data_value(value: float, quality: Quality, *, source_ms: int, server_ms: int) -> ua.DataValue:
    """What a device server writes: the value with its device (source) timestamp and status."""
    # asyncua annotates the timestamps as its own datetime subclass, yet encodes any datetime.
    return ua.DataValue(
        ua.Variant(float(value), ua.VariantType.Double),
        StatusCode=status_of(quality),
        SourceTimestamp=cast(ua.DateTime, ms_to_datetime(source_ms)),
        ServerTimestamp=cast(ua.DateTime, ms_to_datetime(server_ms)),
    )


def to_reading(
    ref: SensorRef, dv: ua.DataValue, *, receive_time_ms: int, source_node: str
) -> Reading:
    """A received DataValue as a canonical Reading. A Bad value (the server nulls it) or a NaN
    becomes None: the quality says why."""
    raw = dv.Value.Value if dv.Value is not None else None
    value = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
    if isinstance(raw, bool):
        value = float(raw)
    if value is not None and math.isnan(value):
        value = None
    stamp = dv.SourceTimestamp or dv.ServerTimestamp
    return Reading(
        asset=ref.asset,
        sensor=ref.sensor,
        value=value,
        unit=ref.unit,
        quality=quality_of(dv.StatusCode),
        event_time_ms=datetime_to_ms(stamp) if stamp is not None else receive_time_ms,
        receive_time_ms=receive_time_ms,
        source_protocol=PROTOCOL,
        source_node=source_node,
    )
