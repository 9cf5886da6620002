"""The stateful edge filter: applies a FilterConfig to readings and waveforms (ingest layer).

Slow signals go through their class's deadband; high-rate signals become window features, and
stream raw while an exception passthrough is open. Every emitted record carries the config
version. Counters per class feed the egress report.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from plantlake.core.records import Quality, Reading
from plantlake.core.units import quantity_of
from plantlake.ingest.filters import DeadbandState, FilterConfig, deadband_passes, window_features

UNCLASSIFIED = "unclassified"


class EdgeFilter:
    def __init__(
        self, config: FilterConfig, *, quantity: Callable[[str | None], str | None] = quantity_of
    ):
        self.config = config
        self._quantity = quantity
        self._deadband: dict[tuple[str, str], DeadbandState] = {}
        self._raw_until: dict[tuple[str, str], int] = {}
        self.seen: Counter[str] = Counter()  # values offered, per signal class
        self.sent: Counter[str] = Counter()  # records emitted, per signal class

    def reading(self, reading: Reading) -> Reading | None:
        """The reading stamped with the config version if it passes, else None.

        Readings of a class without a deadband (or of no class) always pass: unknown signals
        are never silently thinned.
        """
        klass = self.config.class_for(self._quantity(reading.unit) or "")
        name = klass.name if klass else UNCLASSIFIED
        self.seen[name] += 1
        if klass is not None and klass.deadband is not None:
            value = math.nan if reading.value is None else reading.value
            state = self._deadband.setdefault((reading.asset, reading.sensor), DeadbandState())
            good = reading.quality == Quality.GOOD
            if not deadband_passes(klass.deadband, state, value, reading.event_time_ms, good):
                return None
        self.sent[name] += 1
        return replace(reading, filter_version=self.config.version)

    def waveform(
        self, template: Reading, samples: np.ndarray, rate_hz: float
    ) -> tuple[list[Reading], list[Reading]]:
        """Window features (for the edge_features topic) and raw samples (for telemetry, only
        while a passthrough is open) of a block of high-rate samples starting at
        `template.event_time_ms`. `template` carries asset, sensor, unit and source fields."""
        klass = self.config.class_for(self._quantity(template.unit) or "")
        name = klass.name if klass else UNCLASSIFIED
        self.seen[name] += len(samples)
        key = (template.asset, template.sensor)
        if klass is None or klass.window is None:
            all_raw = self._raw(template, samples, rate_hz)
            self.sent[name] += len(all_raw)
            return [], all_raw
        per_window = max(1, int(klass.window.seconds * rate_hz))
        features: list[Reading] = []
        raw: list[Reading] = []
        for start in range(0, len(samples) - per_window + 1, per_window):
            block = samples[start : start + per_window]
            t0 = template.event_time_ms + int(start * 1000 / rate_hz)
            values = window_features(block, rate_hz, klass.window.bands_hz)
            features += [
                replace(template, sensor=f"{template.sensor}.{feature}", value=value,
                        unit=None if feature == "crest" or feature.startswith("band_") else template.unit,
                        event_time_ms=t0, filter_version=self.config.version)
                for feature, value in values.items()
            ]  # fmt: skip
            passthrough = klass.passthrough
            if passthrough and values.get(passthrough.feature, 0.0) > passthrough.above:
                self._raw_until[key] = t0 + int(passthrough.minutes * 60_000)
            if self._raw_until.get(key, 0) > t0:
                raw += self._raw(replace(template, event_time_ms=t0), block, rate_hz)
        self.sent[name] += len(features) + len(raw)
        return features, raw

    def _raw(self, template: Reading, samples: np.ndarray, rate_hz: float) -> list[Reading]:
        step = 1000.0 / rate_hz
        # Sub-millisecond samples share a millisecond timestamp; `sequence` keeps them apart.
        return [
            replace(template, value=float(v), event_time_ms=template.event_time_ms + int(i * step),
                    sequence=i, filter_version=self.config.version)
            for i, v in enumerate(samples)
        ]  # fmt: skip

    def report(self) -> dict[str, dict[str, float]]:
        """Egress per signal class: values seen, records sent, and the reduction."""
        return {
            name: {
                "seen": self.seen[name],
                "sent": self.sent[name],
                "reduction": 1.0 - self.sent[name] / self.seen[name] if self.seen[name] else 0.0,
            }
            for name in sorted(self.seen)
        }
