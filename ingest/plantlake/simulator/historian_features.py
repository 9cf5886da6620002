"""The edge window features of the historian backfill: one window of simulated waveform per
high-rate sensor per step, featured as the live edge features a waveform block (simulator layer).

Live, the DAQ source hands kHz blocks to `EdgeFilter.waveform`, which cuts them into windows and
sends `window_features` of each to the edge_features topic. The historian archived one value per
step, so the backfill featurizes one window per step instead: the simulator's `waveform` at that
instant, windowed and featured by the edge's own filter config. `window_features_batch` computes
the features of many windows at once (per-window `window_features` and `EdgeFilter.waveform` cost
more than generating the waveform); tests hold it and the readings equal to the edge's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from plantlake.core.plant import Asset, Plant, Sensor
from plantlake.core.records import Quality, Reading
from plantlake.core.units import quantity_of
from plantlake.ingest.filters import FilterConfig, window_features
from plantlake.simulator.plant import waveform

# Windows featured at once: big enough to amortize numpy's per-call cost, small enough (4 MB of
# 2 kHz samples) that a month at a one-second step never holds all its waveforms in memory.
_CHUNK = 256


def window_features_batch(
    windows: np.ndarray, rate_hz: float, bands_hz: Sequence[tuple[float, float]]
) -> dict[str, np.ndarray]:
    """`plantlake.ingest.filters.window_features` of each row of `windows` (windows x samples):
    the same features in the same order, each an array with one value per window, equal to
    `window_features` of that row value for value (not merely close: same operations, and every
    sum runs along the contiguous axis, where numpy sums pairwise as it does in one dimension)."""
    n = windows.shape[1]
    rms = np.sqrt(np.mean(np.square(windows), axis=1))
    peak = np.max(np.abs(windows), axis=1)
    spectrum = np.abs(np.fft.rfft(windows, axis=1)) ** 2 / n**2
    spectrum[:, 1 : (n + 1) // 2] *= 2  # fold negative frequencies (not DC, not Nyquist)
    freqs = np.fft.rfftfreq(n, d=1.0 / rate_hz)
    crest = np.divide(peak, rms, out=np.zeros_like(rms), where=rms > 0)
    features = {"rms": rms, "peak": peak, "crest": crest}
    for low, high in bands_hz:
        in_band = (freqs >= low) & (freqs < high)
        # A boolean column index returns a column-major copy, which numpy would sum row by row
        # in a different order: make the band's rows contiguous first.
        band = np.ascontiguousarray(spectrum[:, in_band])
        features[f"band_{int(low)}_{int(high)}"] = np.sum(band, axis=1)
    return features


@dataclass(frozen=True)
class FeatureChannel:
    """A high-rate sensor the edge filter windows: its window length and bands."""

    asset: Asset
    sensor: Sensor
    samples: int  # per window
    bands_hz: tuple[tuple[float, float], ...]

    @property
    def features(self) -> tuple[str, ...]:
        """The feature names, in the order the edge computes them."""
        return tuple(window_features(np.zeros(self.samples), self.sensor.rate_hz, self.bands_hz))


def feature_channels(assets: Sequence[Asset], filters: FilterConfig) -> list[FeatureChannel]:
    """The high-rate sensors of `assets` whose signal class has a window, as the edge classes
    them (by the quantity of the unit the device reports). Others would reach the lake raw
    only, which a backfill never sends."""
    channels = []
    for asset in assets:
        for sensor in asset.sensors:
            klass = filters.class_for(quantity_of(sensor.unit) or "") if sensor.rate_hz else None
            if klass is None or klass.window is None:
                continue
            samples = max(1, int(klass.window.seconds * sensor.rate_hz))  # as EdgeFilter does
            channels.append(FeatureChannel(asset, sensor, samples, klass.window.bands_hz))
    return channels


def edge_feature_readings(
    plant: Plant,
    channels: Sequence[FeatureChannel],
    *,
    version: str,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    source: str,
) -> Iterator[Reading]:
    """The window features of one window starting at each step, per channel, as the readings
    `EdgeFilter.waveform` makes of a block starting then (sensor `<sensor>.<feature>`, the
    sensor's unit for rms and peak and none for the rest, `filter_version` = `version`).

    Time-major within chunks of steps, so each channel's features come in time order. Event and
    receive time are the step: live, the DAQ card stamps the gateway's clock, not the device's
    (drifting) one; `source` is the source protocol and node. Raw samples are never produced.
    """
    for first in range(start_ms, end_ms, _CHUNK * step_ms):
        times = range(first, min(end_ms, first + _CHUNK * step_ms), step_ms)
        columns = [_featured(plant, channel, times, version, source) for channel in channels]
        for k in range(len(times)):
            for readings in columns:
                yield from readings[k]


def _featured(plant: Plant, channel: FeatureChannel, times: range, version: str,
              source: str) -> list[list[Reading]]:  # fmt: skip
    """Per step of `times`, the channel's feature readings."""
    asset, sensor = channel.asset, channel.sensor
    windows = np.empty((len(times), channel.samples))
    for k, t in enumerate(times):
        windows[k] = waveform(plant, asset, sensor, t, channel.samples)
    values = window_features_batch(windows, sensor.rate_hz, channel.bands_hz)
    # Name and unit as EdgeFilter.waveform gives them (the tests compare the two).
    columns = [
        (f"{sensor.name}.{feature}", _unit(feature, sensor.unit or None), column.tolist())
        for feature, column in values.items()
    ]
    return [
        [Reading(asset.path, name, column[k], unit, Quality.GOOD, t, t, source, source, None,
                 version) for name, unit, column in columns]
        for k, t in enumerate(times)
    ]  # fmt: skip


def _unit(feature: str, unit: str | None) -> str | None:
    # rms and peak are in the sensor's unit; crest factor and band energies have none.
    return None if feature == "crest" or feature.startswith("band_") else unit
