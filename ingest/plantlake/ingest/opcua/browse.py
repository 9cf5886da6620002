"""Batched OPC-UA reads of the plant: browse for sensors, read values, read history (ingest, I/O adapter).

Every call takes many nodes per request: one client browses thousands of tags in a handful of
round trips instead of one per node.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from asyncua import Client, ua

from plantlake.ingest.opcua.model import (
    ENGINEERING_UNITS,
    ROOT,
    SensorRef,
    ms_to_datetime,
    sensor_ref,
)

log = logging.getLogger(__name__)


async def browse_all(
    client: Client, nodes: Sequence[ua.NodeId], *, per_request: int
) -> list[list[ua.ReferenceDescription]]:
    """Forward hierarchical references of many nodes, in as few Browse calls as allowed."""
    results: list[list[ua.ReferenceDescription]] = []
    for start in range(0, len(nodes), per_request):
        params = ua.BrowseParameters(
            RequestedMaxReferencesPerNode=0,
            NodesToBrowse=[
                ua.BrowseDescription(
                    NodeId=node,
                    BrowseDirection=ua.BrowseDirection.Forward,
                    ReferenceTypeId=ua.NodeId(ua.Int32(ua.ObjectIds.HierarchicalReferences)),
                    IncludeSubtypes=True,
                    NodeClassMask=0,
                    ResultMask=ua.BrowseResultMask.All,
                )
                for node in nodes[start : start + per_request]
            ],
        )
        for result in await client.uaclient.browse(params):
            refs = list(result.References)
            point = result.ContinuationPoint
            while point:
                (more,) = await client.uaclient.browse_next(
                    ua.BrowseNextParameters(
                        ReleaseContinuationPoints=False, ContinuationPoints=[point]
                    )
                )
                refs += more.References
                point = more.ContinuationPoint
            results.append(refs)
    return results


async def read_values(
    client: Client, nodes: Sequence[ua.NodeId], *, per_request: int
) -> list[ua.DataValue]:
    values: list[ua.DataValue] = []
    for start in range(0, len(nodes), per_request):
        params = ua.ReadParameters(
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            NodesToRead=[
                ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value)
                for node in nodes[start : start + per_request]
            ],
        )
        values += await client.uaclient.read(params)
    return values


async def browse_sensors(client: Client, *, per_request: int = 500) -> dict[ua.NodeId, SensorRef]:
    """Every sensor variable under Objects/Plant, with its asset path, sensor name and unit."""
    objects = ua.NodeId(ua.Int32(ua.ObjectIds.ObjectsFolder))
    (top,) = await browse_all(client, [objects], per_request=per_request)
    level: list[tuple[ua.NodeId, tuple[str, ...]]] = [
        (ref.NodeId, (ROOT,)) for ref in top if ref.BrowseName.Name == ROOT
    ]
    # Plant / site / line / asset / sensor: four levels below the Plant folder.
    for _ in range(4):
        children = await browse_all(client, [node for node, _ in level], per_request=per_request)
        level = [
            (ref.NodeId, (*path, ref.BrowseName.Name))
            for (_, path), refs in zip(level, children, strict=True)
            for ref in refs
            if ref.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable)
            and ref.ReferenceTypeId != ua.NodeId(ua.Int32(ua.ObjectIds.HasProperty))
        ]
    variables = [(node, path) for node, path in level if len(path) == 5]
    properties = await browse_all(client, [node for node, _ in variables], per_request=per_request)
    eu_nodes = [
        next((ref.NodeId for ref in refs if ref.BrowseName.Name == ENGINEERING_UNITS), None)
        for refs in properties
    ]
    known = [node for node in eu_nodes if node is not None]
    eus = dict(zip(known, await read_values(client, known, per_request=per_request), strict=True))
    sensors = {}
    for (node, path), eu_node in zip(variables, eu_nodes, strict=True):
        eu = eus[eu_node].Value.Value if eu_node is not None and eus[eu_node].Value else None
        sensors[node] = sensor_ref(path, eu if isinstance(eu, ua.EUInformation) else None)
    return sensors


async def read_history(
    client: Client,
    nodes: Sequence[ua.NodeId],
    start_ms: int,
    end_ms: int,
    *,
    per_request: int = 100,
) -> dict[ua.NodeId, list[ua.DataValue]]:
    """Raw history of `nodes` with source timestamps in [start_ms, end_ms], following
    continuation points."""
    details = ua.ReadRawModifiedDetails(
        IsReadModified=False,
        StartTime=ms_to_datetime(start_ms),
        EndTime=ms_to_datetime(end_ms),
        NumValuesPerNode=0,
        ReturnBounds=False,
    )
    out: dict[ua.NodeId, list[ua.DataValue]] = {node: [] for node in nodes}
    pending: list[tuple[ua.NodeId, bytes | None]] = [(node, None) for node in nodes]
    while pending:
        batch, pending = pending[:per_request], pending[per_request:]
        params = ua.HistoryReadParameters(
            HistoryReadDetails=details,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            ReleaseContinuationPoints=False,
            NodesToRead=[
                ua.HistoryReadValueId(NodeId=node, ContinuationPoint=point) for node, point in batch
            ],
        )
        for (node, _), result in zip(
            batch, await client.uaclient.history_read(params), strict=True
        ):
            if not result.StatusCode.is_good() or result.HistoryData is None:
                log.warning("HistoryRead of %s failed: %s", node.to_string(), result.StatusCode)
                continue
            out[node] += result.HistoryData.DataValues or []
            if result.ContinuationPoint:
                pending.append((node, result.ContinuationPoint))
    return out
