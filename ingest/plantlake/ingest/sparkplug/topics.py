"""Sparkplug B topic names and how an edge node and its devices map to plant asset paths (ingest layer).

Asset mapping (a naming convention the simulator and the primary host share):
`spBv1.0/<group_id>/<TYPE>/<edge_node_id>/<device_id>` is the asset `<site>/<line>/<asset>` with
site = group_id, line = edge_node_id without its `-gateway` suffix (one gateway per line), and
asset = device_id. Node-level metrics (NDATA) belong to the gateway itself:
`<site>/<line>/<edge_node_id>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

NAMESPACE = "spBv1.0"
GATEWAY_SUFFIX = "-gateway"
NODE_TYPES = frozenset({"NBIRTH", "NDEATH", "NDATA", "NCMD"})
DEVICE_TYPES = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})
REBIRTH_METRIC = "Node Control/Rebirth"
BDSEQ_METRIC = "bdSeq"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed Sparkplug topic; `device` is None for node-level messages."""

    group: str
    kind: str
    node: str
    device: str | None = None

    @property
    def node_key(self) -> str:
        return f"{self.group}/{self.node}"


def parse_topic(topic: str) -> Topic | None:
    """The Sparkplug topic, or None when the topic is not a node or device message (e.g. STATE)."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != NAMESPACE or parts[1] == "STATE":
        return None
    group, kind, node = parts[1], parts[2], parts[3]
    if kind in NODE_TYPES and len(parts) == 4:
        return Topic(group, kind, node)
    if kind in DEVICE_TYPES and len(parts) == 5:
        return Topic(group, kind, node, parts[4])
    return None


def topic_name(group: str, kind: str, node: str, device: str | None = None) -> str:
    base = f"{NAMESPACE}/{group}/{kind}/{node}"
    return base if device is None else f"{base}/{device}"


def state_topic(host_app_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_app_id}"


def state_payload(*, online: bool, timestamp_ms: int) -> bytes:
    """Sparkplug 3.0 STATE body: JSON, published retained by the primary host application."""
    return json.dumps({"online": online, "timestamp": timestamp_ms}).encode()


def parse_state(payload: bytes) -> tuple[bool, int] | None:
    """(online, timestamp) of a STATE message, or None if it is not valid 3.0 STATE JSON."""
    try:
        body = json.loads(payload)
        return bool(body["online"]), int(body["timestamp"])
    except (ValueError, TypeError, KeyError):
        return None


def line_of_node(edge_node_id: str) -> str:
    return edge_node_id.removesuffix(GATEWAY_SUFFIX)


def asset_path(group: str, node: str, device: str | None) -> str:
    """The plant asset path of a device (or of the gateway itself for node-level metrics)."""
    return f"{group}/{line_of_node(node)}/{device if device is not None else node}"
