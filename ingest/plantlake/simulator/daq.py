"""A vibration acquisition source: blocks of kHz samples from the simulated plant's accelerometers
(ingest layer). On a real gateway this is the local DAQ card; protocols do not carry kHz data."""

from __future__ import annotations

import threading

from plantlake.core.records import Quality, Reading
from plantlake.simulator.clock import SimClock
from plantlake.simulator.plant import Plant, waveform


def run_daq(plant: Plant, clock: SimClock, sink, *, stop: threading.Event, block_s: float = 1.0,
            node: str = "daq") -> None:  # fmt: skip
    """Every `block_s` of simulated time, hand each vibration sensor's samples to `sink.waveform`."""
    channels = [(a, s) for a in plant.assets for s in a.sensors if s.rate_hz]
    t = clock.now_ms()
    while not stop.is_set():
        now = clock.now_ms()
        if now < t + block_s * 1000:
            stop.wait(min(0.05, (t + block_s * 1000 - now) / 1000 / clock.speed))
            continue
        for asset, sensor in channels:
            n = int(sensor.rate_hz * block_s)
            template = Reading(asset.path, sensor.name, None, sensor.unit, Quality.GOOD, t, now,
                               "daq", node)  # fmt: skip
            sink.waveform(template, waveform(plant, asset, sensor, t, n), sensor.rate_hz)
        t += int(block_s * 1000)
