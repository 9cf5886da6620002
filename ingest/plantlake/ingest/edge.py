"""Where protocol clients put what they read: the edge sink interface (ingest layer).

Protocol clients know nothing of buffers or Kafka; they hand readings, lifecycle events and
dead letters to a sink. The store-and-forward buffer is the production sink; `MemorySink`
collects in memory for tests and the simulator's self-checks.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

from plantlake.core.records import DeadLetter, LifecycleEvent, Reading


class EdgeSink(Protocol):
    def readings(self, items: Sequence[Reading]) -> None: ...

    def lifecycle(self, event: LifecycleEvent) -> None: ...

    def dead_letter(self, item: DeadLetter) -> None: ...


class WatermarkStore(Protocol):
    """Where an edge process keeps, per (asset, sensor), the newest source time it handled, so
    that its next run can ask the device for what came after (the edge buffer is one)."""

    def load_watermarks(self) -> dict[tuple[str, str], int]: ...

    def save_watermarks(self, marks: Mapping[tuple[str, str], int]) -> None: ...


class MemoryWatermarks:
    """A WatermarkStore in memory (tests: share one between two runs of a client)."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], int] = {}

    def load_watermarks(self) -> dict[tuple[str, str], int]:
        return dict(self.marks)

    def save_watermarks(self, marks: Mapping[tuple[str, str], int]) -> None:
        for key, ms in marks.items():
            self.marks[key] = max(ms, self.marks.get(key, ms))


class MemorySink:
    """A thread-safe in-memory sink."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.all_readings: list[Reading] = []
        self.events: list[LifecycleEvent] = []
        self.dead: list[DeadLetter] = []

    def readings(self, items: Sequence[Reading]) -> None:
        with self._lock:
            self.all_readings.extend(items)

    def lifecycle(self, event: LifecycleEvent) -> None:
        with self._lock:
            self.events.append(event)

    def dead_letter(self, item: DeadLetter) -> None:
        with self._lock:
            self.dead.append(item)
