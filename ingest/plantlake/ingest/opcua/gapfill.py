"""De-duplicating and ordering live and backfilled readings across reconnects (ingest layer, pure)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from plantlake.core.records import Reading

log = logging.getLogger(__name__)


class GapFiller:
    """De-duplication and ordering of live and backfilled readings (pure; no I/O).

    Keeps, per (asset, sensor), the newest source timestamp emitted. Live readings pass when
    newer; while a backfill runs they are held back, then released after the history so that
    each sensor's readings go out in source-time order, each exactly once.
    """

    def __init__(self, *, clock_reset_ms: int = 600_000):
        self._newest: dict[tuple[str, str], int] = {}
        self._changed: set[tuple[str, str]] = set()
        self._held: list[Reading] | None = None
        self._clock_reset_ms = clock_reset_ms
        self.restored = 0

    def seed(self, newest: Mapping[tuple[str, str], int]) -> None:
        """Start from the newest source times an earlier process emitted (its watermarks)."""
        self._newest.update(newest)

    def changes(self) -> dict[tuple[str, str], int]:
        """The newest source time of each sensor that moved since the last call (to persist)."""
        moved, self._changed = self._changed, set()
        return {key: self._newest[key] for key in moved}

    @property
    def backfilling(self) -> bool:
        return self._held is not None

    def newest(self, asset: str, sensor: str) -> int | None:
        return self._newest.get((asset, sensor))

    def begin(self) -> None:
        self._held = []

    def live(self, readings: Iterable[Reading]) -> list[Reading]:
        if self._held is not None:
            self._held.extend(readings)
            return []
        return self._accept(readings)

    def finish(self, history: Iterable[Reading]) -> list[Reading]:
        """End the backfill: the history readings not yet emitted, then the held live ones.
        `restored` tells how many came from history."""
        held, self._held = self._held or [], None
        restored = self._accept(sorted(history, key=lambda r: r.event_time_ms))
        self.restored = len(restored)
        return restored + self._accept(held)

    def abort(self) -> int:
        """Drop the held live readings (the backfill failed); returns how many."""
        held, self._held = self._held or [], None
        return len(held)

    def _accept(self, readings: Iterable[Reading]) -> list[Reading]:
        out = []
        for reading in readings:
            key = (reading.asset, reading.sensor)
            newest = self._newest.get(key)
            if newest is not None and reading.event_time_ms <= newest:
                if newest - reading.event_time_ms < self._clock_reset_ms:
                    continue  # already emitted (a replay, or history overlapping live)
                log.warning(
                    "Source clock of %s/%s went back %d ms; starting over",
                    *key,
                    newest - reading.event_time_ms,
                )
            self._newest[key] = reading.event_time_ms
            self._changed.add(key)
            out.append(reading)
        return out
