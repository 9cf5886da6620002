"""Benchmark: edge filtering egress on a simulated stretch of plant time.

Run: .venv/bin/python tests/benchmarks/bench_edge_filter.py [--minutes 60] [--sample-ms 100]

Prints, per signal class, values in, records out and the reduction, then overall; and for every
deadbanded signal the maximum sample-and-hold reconstruction error next to its band (which it
must not exceed) and the longest silence (which the heartbeat bounds).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict

from plantlake.core.records import Quality, Reading
from plantlake.core.units import quantity_of
from plantlake.ingest.edge_filter import EdgeFilter
from plantlake.ingest.filters import load_filter_config
from plantlake.simulator.plant import build_plant, value_at, waveform


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument(
        "--sample-ms", type=int, default=100, help="device update period of slow tags"
    )
    args = parser.parse_args()

    plant = build_plant()
    config = load_filter_config()
    edge = EdgeFilter(config)
    start = plant.start_ms + 3 * 24 * 3_600_000  # a stretch with some degradation under way
    end = start + int(args.minutes * 60_000)
    held: dict[tuple[str, str], float] = {}
    last_sent_t: dict[tuple[str, str], int] = {}
    max_error: dict[tuple[str, str], float] = defaultdict(float)
    max_silence: dict[tuple[str, str], int] = defaultdict(int)
    band: dict[tuple[str, str], float] = {}
    max_ratio: dict[tuple[str, str], float] = defaultdict(float)
    began = time.perf_counter()
    slow = [(a, s) for a in plant.assets for s in a.sensors if not s.rate_hz]
    for t in range(start, end, args.sample_ms):
        for asset, sensor in slow:
            value, quality = value_at(plant, asset, sensor, t)
            key = (asset.path, sensor.name)
            reading = Reading(
                asset.path, sensor.name, value, sensor.unit, quality, t, t, "sim", "bench"
            )
            if edge.reading(reading) is not None:
                max_silence[key] = max(max_silence[key], t - last_sent_t.get(key, t))
                held[key], last_sent_t[key] = value, t
            elif not math.isnan(value) and not math.isnan(held[key]):
                max_error[key] = max(max_error[key], abs(value - held[key]))
                klass = config.class_for(quantity_of(sensor.unit))
                band[key] = klass.deadband.band(held[key]) if klass and klass.deadband else math.inf
                if 0 < band[key] < math.inf:
                    max_ratio[key] = max(max_ratio[key], abs(value - held[key]) / band[key])
    slow_s = time.perf_counter() - began
    fast = [(a, s) for a in plant.assets for s in a.sensors if s.rate_hz]
    began = time.perf_counter()
    for t in range(start, end, 10_000):
        for asset, sensor in fast:
            template = Reading(
                asset.path, sensor.name, None, sensor.unit, Quality.GOOD, t, t, "sim", "bench"
            )
            edge.waveform(
                template,
                waveform(plant, asset, sensor, t, int(sensor.rate_hz * 10)),
                sensor.rate_hz,
            )
    fast_s = time.perf_counter() - began

    report = edge.report()
    print(f"\nEdge filter egress over {args.minutes:g} simulated minutes "
          f"(slow tags every {args.sample_ms} ms, vibration at 2 kHz), config {config.version}")  # fmt: skip
    print(f"{'class':<14}{'values in':>14}{'records out':>14}{'reduction':>11}")
    for name, row in report.items():
        print(f"{name:<14}{row['seen']:>14,}{row['sent']:>14,}{row['reduction']:>11.2%}")
    seen = sum(r["seen"] for r in report.values())
    sent = sum(r["sent"] for r in report.values())
    print(f"{'overall':<14}{seen:>14,}{sent:>14,}{1 - sent / seen:>11.2%}")
    print(f"\n(filtering cost: slow tags {slow_s:.1f}s incl. simulation, vibration {fast_s:.1f}s)")
    print(
        f"\n{'deadbanded signal':<48}{'max error':>11}{'band':>9}{'error/band':>11}{'max silence s':>15}"
    )
    worst = 0.0
    for key in sorted(max_error):
        ratio = max_ratio[key]  # the worst error relative to the band in force at that moment
        worst = max(worst, ratio)
        print(f"{'/'.join(key):<48}{max_error[key]:>11.4f}{band.get(key, 0):>9.3f}{ratio:>11.2f}"
              f"{max_silence[key] / 1000:>15.1f}")  # fmt: skip
    print(f"\nworst reconstruction error / band: {worst:.2f} (must be <= 1.00)")


if __name__ == "__main__":
    main()
