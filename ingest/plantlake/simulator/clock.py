"""Simulated time: the plant runs at `speed` simulated seconds per wall-clock second."""

from __future__ import annotations

import time

from plantlake.core.clock import now_ms


class SimClock:
    def __init__(self, start_ms: int | None = None, *, speed: float = 1.0):
        self.start_ms = now_ms() if start_ms is None else start_ms
        self.speed = speed
        self._wall0 = time.monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self._wall0) * 1000 * self.speed)
