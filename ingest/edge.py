"""Where protocol clients put what they read: the edge sink interface (ingest layer).

Protocol clients know nothing of buffers or Kafka; they hand readings, lifecycle events and
dead letters to a sink. The store-and-forward buffer is the production sink; `MemorySink`
collects in memory for tests and the simulator's self-checks.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from plantlake.ingest.records import DeadLetter, LifecycleEvent, Reading


class EdgeSink(Protocol):
    def readings(self, items: Sequence[Reading]) -> None: ...

    def lifecycle(self, event: LifecycleEvent) -> None: ...

    def dead_letter(self, item: DeadLetter) -> None: ...


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
