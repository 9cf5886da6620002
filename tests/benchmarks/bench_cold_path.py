"""Benchmark: how many readings a second the cold path (silver + gold aggregates, one query) can
drain on this machine, alone, against the 10,000 readings/s it must keep up with.

Run with the stack up (and nothing else using the 2 cores):
`.venv/bin/python -m tests.benchmarks.bench_cold_path [--assets 250] [--sensors 20]
[--small 30] [--large 60] [--batches 2]`

bench_freshness.py measures the cold path as deployed, sharing two cores with bronze, the hot
path and the producer; this one measures what the cold path itself costs. Bronze rows for a
plant of assets x sensors (5,000 by default) are appended to bronze.telemetry, one delivery of
`--small` and then of `--large` readings per sensor at a time, alternating `--batches` times,
each drained by `plantlake pipeline run cold --once` in one Spark session. The first delivery
only warms the session and the tables. From the two sizes the run fits a batch's fixed cost and
its cost per reading, and from those the batch length at which the cold path keeps up with a
given rate (fixed / (1 - rate x per reading)), if it can.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from plantlake.adapters.spark import get_spark
from plantlake.core.config import LakeSettings, load_settings
from plantlake.core.contracts import BRONZE_TELEMETRY
from plantlake.pipelines.jobs import cold_path
from tests.benchmarks.bench_freshness import plant, write_reference
from tests.spark.test_silver import BRONZE_SCHEMA, bronze_row

AIM_RATE = 10_000


def deliveries(sensors, per_sensor: int, first_ms: int, first_offset: int) -> list[dict]:
    """`per_sensor` readings of every sensor, one a second from `first_ms`, varying values."""
    rows = []
    for k in range(per_sensor):
        for i, (asset, sensor, _quantity, unit, base) in enumerate(sensors):
            offset = first_offset + k * len(sensors) + i
            value = base * (1 + 0.01 * ((offset * 7919) % 100) / 100)
            rows.append(bronze_row(asset, sensor, value, unit, t_ms=first_ms + k * 1000,
                                   offset=offset))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=250)
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--small", type=int, default=30, help="readings per sensor, small batch")
    parser.add_argument("--large", type=int, default=60, help="readings per sensor, large batch")
    parser.add_argument("--batches", type=int, default=2, help="measured batches of each size")
    args = parser.parse_args()
    base = load_settings()
    run = uuid.uuid4().hex[:8]
    root = f"s3a://plantlake/bench/cold-{run}"
    settings = base.model_copy(update={"lake": LakeSettings(
        root=root, checkpoint_root=f"file:///tmp/bench-cold-{run}/checkpoints")})  # fmt: skip
    sensors = plant(args.assets, args.sensors)
    write_reference(settings, sensors)
    spark = get_spark(settings, app_name="plantlake-bench-cold-path")
    bronze_path = BRONZE_TELEMETRY.path(settings.lake)
    # Event time starts 20 minutes ago, so windows close as the run goes on, as they do live.
    clock_ms, offset = int(time.time() * 1000) - 20 * 60_000, 0
    sizes = [args.small] + [n for _ in range(args.batches) for n in (args.small, args.large)]
    measured: dict[int, list[float]] = {args.small: [], args.large: []}
    print(f"cold path on {len(sensors):,} sensors; batches of {args.small * len(sensors):,} and "
          f"{args.large * len(sensors):,} readings; lake {root}")  # fmt: skip
    try:
        for i, per_sensor in enumerate(sizes):
            rows = deliveries(sensors, per_sensor, clock_ms, offset)
            clock_ms, offset = clock_ms + per_sensor * 1000, offset + len(rows)
            spark.createDataFrame(rows, BRONZE_SCHEMA).write.format("delta").mode("append").save(
                bronze_path
            )
            began = time.perf_counter()
            query = cold_path.run(spark, settings, once=True)
            query.awaitTermination()
            took = time.perf_counter() - began
            if query.exception() is not None:
                raise SystemExit(f"the cold path failed: {query.exception()}")
            label = "warm-up" if i == 0 else "measured"
            print(f"  {time.strftime('%H:%M:%S')} batch {i}: {len(rows):>9,} readings in "
                  f"{took:6.1f} s = {len(rows) / took:8,.0f}/s ({label})", flush=True)  # fmt: skip
            if i:
                measured[per_sensor].append(took)
    finally:
        spark.stop()

    small_n, large_n = args.small * len(sensors), args.large * len(sensors)
    small_s = statistics.median(measured[args.small])
    large_s = statistics.median(measured[args.large])
    per_reading = max(0.0, (large_s - small_s) / (large_n - small_n))
    fixed = max(0.0, small_s - per_reading * small_n)
    print(f"\nCold path alone (median of {args.batches} batches a size, query start included):")
    print(f"  {small_n:>9,} readings: {small_s:6.1f} s = {small_n / small_s:8,.0f}/s")
    print(f"  {large_n:>9,} readings: {large_s:6.1f} s = {large_n / large_s:8,.0f}/s")
    print(f"  fit: {fixed:.1f} s a batch + {per_reading * 1e6:.1f} us a reading; "
          f"at most {1 / per_reading if per_reading else float('inf'):,.0f} readings/s "
          f"with unbounded batches")  # fmt: skip
    for rate in (AIM_RATE // 4, AIM_RATE // 2, AIM_RATE):
        load = rate * per_reading
        if load >= 1:
            print(f"  at {rate:,}/s: cannot keep up (each second of input takes {load:.2f} s)")
        else:
            batch = fixed / (1 - load)
            print(
                f"  at {rate:,}/s: keeps up with back-to-back batches of {batch:.0f} s "
                f"({rate * batch:,.0f} readings); silver lag up to about {2 * batch:.0f} s"
            )
    print(f"aim (issue 14): keep up at {AIM_RATE:,} readings/s with silver lag p99 < 90 s")


if __name__ == "__main__":
    main()
