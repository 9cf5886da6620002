"""What edge processes emit: canonical readings, lifecycle events and dead letters (ingest layer).

These are the only shapes that leave an edge process; `to_record()` gives the JSON-ready mapping
that goes to Kafka (the telemetry layout is the lake contract in `plantlake.core.contracts`).
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from enum import StrEnum

from plantlake.core.contracts import RECORD_SCHEMA_VERSION


class Quality(StrEnum):
    GOOD = "Good"
    UNCERTAIN = "Uncertain"
    BAD = "Bad"


@dataclass(frozen=True, slots=True)
class Reading:
    """One sensor value at one source timestamp, with where it came from."""

    asset: str
    sensor: str
    value: float | None
    unit: str | None
    quality: Quality
    event_time_ms: int
    receive_time_ms: int
    source_protocol: str
    source_node: str
    sequence: int | None = None
    filter_version: str | None = None

    def to_record(self) -> dict:
        # Spelled out: dataclasses.asdict deep-copies and is several times slower on this hot path.
        return {
            "schema_version": RECORD_SCHEMA_VERSION,
            "asset": self.asset,
            "sensor": self.sensor,
            "value": self.value,
            "unit": self.unit,
            "quality": self.quality.value,
            "event_time_ms": self.event_time_ms,
            "receive_time_ms": self.receive_time_ms,
            "source_protocol": self.source_protocol,
            "source_node": self.source_node,
            "sequence": self.sequence,
            "filter_version": self.filter_version,
        }


class LifecycleKind(StrEnum):
    BIRTH = "birth"
    DEATH = "death"
    STALE = "stale"
    REBIRTH_REQUESTED = "rebirth_requested"
    RECONNECTED = "reconnected"
    DATA_SHED = "data_shed"  # the edge buffer reached its cap and dropped its oldest readings
    DATA_GAP = "data_gap"  # a span of source time the edge could not backfill from the device


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """A node or device came alive, died, went stale, or was asked to rebirth."""

    kind: LifecycleKind
    source_protocol: str
    source_node: str
    event_time_ms: int
    receive_time_ms: int
    device: str | None = None
    asset: str | None = None
    bd_seq: int | None = None
    detail: str = ""

    @property
    def key(self) -> str:
        return self.asset or f"{self.source_node}/{self.device or ''}"

    def to_record(self) -> dict:
        record = asdict(self)
        record["kind"] = str(self.kind)
        return record


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that could not become a reading: the reason and the raw bytes, nothing dropped."""

    source_protocol: str
    source_node: str
    reason: str
    raw: bytes
    receive_time_ms: int
    origin: str | None = None  # e.g. the MQTT topic or register address it came from

    @property
    def key(self) -> str:
        return self.source_node

    def to_record(self) -> dict:
        record = asdict(self)
        record["raw"] = base64.b64encode(self.raw).decode()
        return record
