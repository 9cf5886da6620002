"""Discovery of an OPC-UA server's sensors for a registry draft (ingest, I/O adapter).

The same session and browse the edge client uses (`connection.connect`, `browse.browse_sensors`:
AnalogItems under Objects/Plant/<site>/<line>/<asset>, with their EngineeringUnits), plus one
batched read of each variable's EURange. `plantlake.ingest.discovery` turns the result into
the draft.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from asyncua import Client, ua

from plantlake.core import clock
from plantlake.core.config import OpcUaSettings
from plantlake.core.errors import SourceError
from plantlake.ingest.discovery import Discovery, Signal
from plantlake.ingest.opcua.browse import browse_all, browse_sensors, read_values
from plantlake.ingest.opcua.connection import connect
from plantlake.ingest.opcua.model import EU_RANGE, ROOT, SensorRef


def opcua_signals(
    refs: Mapping[ua.NodeId, SensorRef], ranges: Mapping[ua.NodeId, tuple[float, float]]
) -> tuple[Signal, ...]:
    """Browsed sensor variables as discovery signals, addressed by their NodeId string."""
    return tuple(
        Signal(ref.asset, ref.sensor, ref.unit, node.to_string(), eu_range=ranges.get(node))
        for node, ref in refs.items()
    )


async def read_eu_ranges(
    client: Client, nodes: Sequence[ua.NodeId], *, per_request: int
) -> dict[ua.NodeId, tuple[float, float]]:
    """(low, high) of each variable's EURange property; variables without one are left out."""
    properties = await browse_all(client, nodes, per_request=per_request)
    found = {
        node: ref.NodeId
        for node, refs in zip(nodes, properties, strict=True)
        for ref in refs
        if ref.BrowseName.Name == EU_RANGE
    }
    values = await read_values(client, list(found.values()), per_request=per_request)
    ranges = {}
    for node, dv in zip(found, values, strict=True):
        value = dv.Value.Value if dv.Value is not None else None
        if isinstance(value, ua.Range):
            ranges[node] = (float(value.Low), float(value.High))
    return ranges


async def discover_opcua(
    opcua: OpcUaSettings, pki: Path, *, per_request: int = 500, timeout_s: float = 10.0
) -> Discovery:
    """Every sensor variable of `opcua.endpoint` with its unit, EURange and NodeId.

    Logs in as the edge does (security, certificate pinning, user). Raises SourceError when the
    server is unreachable, refuses the session, or has no sensors under Objects/Plant.
    """
    endpoint = opcua.endpoint
    try:
        client = await connect(opcua, pki, timeout_s=timeout_s)
    except (OSError, TimeoutError, ua.UaError) as exc:
        raise SourceError(
            f"Cannot reach the OPC-UA server at {endpoint}: {str(exc) or type(exc).__name__}.",
            hint="Check the endpoint (opc.tcp://host:port/path) and that the server is running.",
        ) from exc
    try:
        discovered_ms = clock.now_ms()
        refs = await browse_sensors(client, per_request=per_request)
        ranges = await read_eu_ranges(client, list(refs), per_request=per_request)
    except (OSError, TimeoutError, ua.UaError) as exc:
        raise SourceError(f"Browsing the OPC-UA server at {endpoint} failed: {exc}.") from exc
    finally:
        with contextlib.suppress(Exception):  # a broken session has nothing left to close
            await asyncio.wait_for(client.disconnect(), timeout=3)
    if not refs:
        raise SourceError(
            f"OPC-UA server {endpoint} has no sensor variables under Objects/{ROOT}.",
            hint=f"Discovery reads Objects/{ROOT}/<site>/<line>/<asset>/<sensor>; "
            "map other address spaces by hand.",
        )
    return Discovery("opcua", endpoint, discovered_ms, opcua_signals(refs, ranges))
