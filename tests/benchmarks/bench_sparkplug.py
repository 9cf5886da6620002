"""Benchmark: Sparkplug decode + primary-host state machine in metrics/s on one core, against raw protobuf parsing.

Run with `.venv/bin/python tests/benchmarks/bench_sparkplug.py [--seconds S]`. Payloads are
realistic DDATA: N aliased Double metrics with their own timestamps, one in fifty carrying a
non-Good quality property. "raw parse" is `Payload.ParseFromString` alone (the floor any Python
Sparkplug host pays); "decode" adds alias resolution and typed values; "host" is the full
`PrimaryHost.handle` (seq tracking, readings built) as the MQTT worker runs it.
"""

from __future__ import annotations

import argparse
import time

from plantlake.core.records import Quality
from plantlake.ingest.sparkplug import sparkplug_b_pb2 as pb
from plantlake.ingest.sparkplug.codec import DataType, Metric, MetricInfo, decode_payload
from plantlake.ingest.sparkplug.codec import encode_payload as encode
from plantlake.ingest.sparkplug.host import HostOptions, PrimaryHost

GROUP, NODE, DEVICE = "plant1", "line1-gateway", "pump-02"
PAYLOADS = 256  # one full seq cycle


def _metrics(n: int, t0: int) -> list[Metric]:
    return [
        Metric(f"sensor_{i:03d}", DataType.DOUBLE, 50.0 + i * 0.01 + (t0 % 97) * 0.001, t0 + i,
               alias=i + 1, unit="degC",
               quality=Quality.UNCERTAIN if i % 50 == 49 else Quality.GOOD)
        for i in range(n)
    ]  # fmt: skip


def _ddata(n: int) -> list[bytes]:
    t0 = 1_767_225_600_000
    return [encode(_metrics(n, t0 + k * 1000), seq=(k + 2) % 256, timestamp_ms=t0 + k * 1000)
            for k in range(PAYLOADS)]  # fmt: skip


def _rate(fn, payloads: list[bytes], n: int, seconds: float) -> float:
    """Metrics per second of `fn` over the payloads, repeated for about `seconds`."""
    done, start = 0, time.perf_counter()
    while True:
        for payload in payloads:
            fn(payload)
        done += len(payloads)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done * n / elapsed


def _host(n: int) -> PrimaryHost:
    host = PrimaryHost(HostOptions(reorder_timeout_ms=0))
    birth_metrics = [Metric("bdSeq", DataType.INT64, 0)]
    host.handle(f"spBv1.0/{GROUP}/NBIRTH/{NODE}",
                encode(birth_metrics, seq=0, timestamp_ms=0, birth=True), 0)  # fmt: skip
    host.handle(f"spBv1.0/{GROUP}/DBIRTH/{NODE}/{DEVICE}",
                encode(_metrics(n, 0), seq=1, timestamp_ms=0, birth=True), 0)  # fmt: skip
    return host


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    print(f"{'metrics/payload':>15} {'raw parse':>12} {'decode':>12} {'host':>12} "
          f"{'decode/raw':>10} {'host/raw':>9}   (metrics/s, one core)")  # fmt: skip
    for n in (50, 100, 200):
        payloads = _ddata(n)
        aliases = {i + 1: MetricInfo(f"sensor_{i:03d}", DataType.DOUBLE, "degC") for i in range(n)}
        message = pb.Payload()
        raw = _rate(message.ParseFromString, payloads, n, args.seconds)
        decode = _rate(lambda p, a=aliases: decode_payload(p, aliases=a), payloads, n, args.seconds)
        host = _host(n)
        topic = f"spBv1.0/{GROUP}/DDATA/{NODE}/{DEVICE}"
        readings = 0

        def handle(payload: bytes, host=host, topic=topic) -> None:
            nonlocal readings
            readings += len(host.handle(topic, payload, 1).readings)

        full = _rate(handle, payloads, n, args.seconds)
        assert readings and not host.handle(topic, payloads[0], 1).rebirths  # seq stayed in order
        print(f"{n:>15} {raw:>12,.0f} {decode:>12,.0f} {full:>12,.0f} "
              f"{decode / raw:>10.3f} {full / raw:>9.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
