"""The production edge sink: filter, then append to the durable buffer by topic (ingest layer)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson

from plantlake.core.clock import now_ms, utc_text
from plantlake.core.records import DeadLetter, LifecycleEvent, LifecycleKind, Reading
from plantlake.core.topics import topic
from plantlake.ingest.buffer import Outbox, Shed
from plantlake.ingest.edge import WatermarkStore
from plantlake.ingest.edge_filter import EdgeFilter


def _row(topic_name: str, key: str, record: dict) -> tuple[str, bytes, bytes]:
    # NaN is a legal reading (a device said "no value"); JSON has no NaN, and orjson writes null.
    return topic_name, key.encode(), orjson.dumps(record)


def sheddable_topics(topic_prefix: str) -> tuple[str, ...]:
    """What a full buffer may drop, oldest first: readings and features, never the events that
    say what happened (lifecycle) or the input kept for a person to look at (dead letters)."""
    return topic("telemetry").name(topic_prefix), topic("edge_features").name(topic_prefix)


class BufferedSink:
    """Implements EdgeSink: everything goes through the edge filter into the buffer."""

    def __init__(self, outbox: Outbox, *, topic_prefix: str, edge_filter: EdgeFilter | None,
                 node: str = "edge"):  # fmt: skip
        """`node` names this edge process in the lifecycle event a full buffer writes."""
        self.outbox = outbox
        self.watermarks: WatermarkStore = outbox  # kept with the buffer
        self.filter = edge_filter
        self.node = node
        self._telemetry = topic("telemetry").name(topic_prefix)
        self._features = topic("edge_features").name(topic_prefix)
        self._lifecycle = topic("lifecycle").name(topic_prefix)
        self._dead_letter = topic("dead_letter").name(topic_prefix)

    def _append(self, rows: list[tuple[str, bytes, bytes]]) -> None:
        shed = self.outbox.append(rows)
        if shed is not None:
            self._shed(shed)

    def _shed(self, shed: Shed) -> None:
        now = now_ms()
        span = f"{utc_text(shed.first_created_ms)} to {utc_text(shed.last_created_ms)} UTC"
        mb = (self.outbox.max_bytes or 0) / 1e6
        event = LifecycleEvent(
            LifecycleKind.DATA_SHED, "edge", self.node, now, now,
            detail=f"edge buffer reached its cap of {mb:.0f} MB while Kafka was unreachable: "
            f"dropped its {shed.count} oldest readings, buffered {span}",
        )  # fmt: skip
        self.outbox.append([_row(self._lifecycle, event.key, event.to_record())])

    def readings(self, items: Sequence[Reading]) -> None:
        kept = [r for r in (self.filter.reading(i) for i in items) if r] if self.filter else items
        self._append([_row(self._telemetry, r.asset, r.to_record()) for r in kept])

    def waveform(self, template: Reading, samples: np.ndarray, rate_hz: float) -> None:
        """A block of high-rate samples: features to edge_features, raw (if passing) to telemetry."""
        if self.filter is None:
            raise ValueError("waveforms need an edge filter to window them")
        features, raw = self.filter.waveform(template, samples, rate_hz)
        self._append(
            [_row(self._features, r.asset, r.to_record()) for r in features]
            + [_row(self._telemetry, r.asset, r.to_record()) for r in raw]
        )

    def lifecycle(self, event: LifecycleEvent) -> None:
        self._append([_row(self._lifecycle, event.key, event.to_record())])

    def dead_letter(self, item: DeadLetter) -> None:
        self._append([_row(self._dead_letter, item.key, item.to_record())])
