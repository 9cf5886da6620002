"""The declared Kafka topics of plantlake, one entry per data class, created by `plantlake up`."""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000

# Kafka headers the edge forwarder sets on every record: (edge instance, buffer sequence) names
# one edge record, so bronze can recognise a record that reached Kafka twice.
INSTANCE_HEADER = "plantlake-edge-instance"
SEQ_HEADER = "plantlake-edge-seq"


@dataclass(frozen=True)
class TopicClass:
    """How a class of topic is kept: partitions, retention and cleanup policy."""

    partitions: int
    retention_ms: int
    cleanup_policy: str = "delete"
    compression_type: str = "zstd"

    def config(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "compression.type": self.compression_type,
        }


# High-volume streams: enough partitions for parallel Spark tasks, a week to replay from.
STREAM = TopicClass(partitions=6, retention_ms=7 * DAY_MS)
# Latest-value-per-key streams: compacted, so a new consumer can rebuild state from the topic.
STATE = TopicClass(partitions=3, retention_ms=-1, cleanup_policy="compact")
# Rare but precious records: kept a month for audits and replays.
EVENTS = TopicClass(partitions=3, retention_ms=30 * DAY_MS)


@dataclass(frozen=True)
class Topic:
    key: str
    klass: TopicClass
    purpose: str

    def name(self, prefix: str) -> str:
        return f"{prefix}.{self.key}"


TOPICS: tuple[Topic, ...] = (
    Topic("telemetry", STREAM, "Canonical readings from every edge process, keyed by asset."),
    Topic("edge_features", STREAM, "Window features computed at the edge (RMS, crest, bands)."),
    Topic("asset_state", STATE, "Latest state of each asset, keyed by asset."),
    Topic("alarms", EVENTS, "Alarms and model alerts, keyed by asset."),
    Topic("lifecycle", EVENTS, "Birth, death and stale events of edge nodes and devices."),
    Topic(
        "dead_letter", EVENTS, "Records that could not be decoded, with the reason and raw bytes."
    ),
)


def topic(key: str) -> Topic:
    for declared in TOPICS:
        if declared.key == key:
            return declared
    raise KeyError(f"no declared topic {key!r}; declared: {[t.key for t in TOPICS]}")
