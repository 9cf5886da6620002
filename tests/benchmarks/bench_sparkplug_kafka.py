"""Benchmark: Sparkplug host to Kafka, metrics/s on one core, against a bare producer.

Run with the stack up (`plantlake up`): `.venv/bin/python tests/benchmarks/bench_sparkplug_kafka.py`.

Measured side by side in one run, on the same records, into throwaway topics:
  bare      - confluent-kafka producing the already-built canonical records (orjson + produce)
  host      - Sparkplug DDATA decoded by the primary host, records produced straight to Kafka
  host+edge - the real edge path: host -> durable SQLite buffer (one append per drained batch
              of up to MAX_BATCH payloads, as the host worker does) -> forwarder -> Kafka (acked),
              timed until the buffer has drained; with the forwarder in a thread of the same
              process (edge.forwarder = "thread"), and in a child process (the default)

Aim (issue 13): host+edge at least 100,000 metrics/s and 0.6 of the bare producer.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).parent))
from bench_sparkplug import DEVICE, GROUP, NODE, _ddata, _host  # noqa: E402

from plantlake.adapters.kafka import producer_config  # noqa: E402
from plantlake.core.config import load_settings  # noqa: E402
from plantlake.core.topics import TOPICS, topic  # noqa: E402
from plantlake.ingest.buffer import Outbox  # noqa: E402
from plantlake.ingest.buffered_sink import BufferedSink  # noqa: E402
from plantlake.ingest.forwarder import Forwarder  # noqa: E402
from plantlake.ingest.forwarder_process import ForwarderProcess  # noqa: E402
from plantlake.ingest.sparkplug.host_client import MAX_BATCH  # noqa: E402
from plantlake.services.kafka import admin_client, ensure_topics  # noqa: E402


def _produce(producer: Producer, name: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(name, key=key, value=value)
            return
        except BufferError:  # local queue full: wait for deliveries
            producer.poll(0.05)


def _durable_path(settings, prefix, mode, payloads, mqtt_topic, n) -> float:
    """Metrics/s from the host's decoding until the buffer has drained into Kafka."""
    host = _host(n)
    path = Path(f"/tmp/{prefix}-{mode}.sqlite")
    outbox = Outbox(path)
    sink = BufferedSink(outbox, topic_prefix=prefix, edge_filter=None)
    if mode == "process":
        forwarder = ForwarderProcess(
            path, settings.kafka, node="bench", status=path.with_suffix(".json")
        )
        forwarder.start()
        time.sleep(3)  # the child's interpreter and producer are up before the clock starts
    else:
        stop = threading.Event()
        thread = threading.Thread(target=Forwarder(outbox, settings.kafka).run, args=(stop,),
                                  kwargs={"idle_s": 0.005})  # fmt: skip
        thread.start()
    start = time.perf_counter()
    # As the host worker does under load: what is queued goes into one buffer append.
    for i in range(0, len(payloads), MAX_BATCH):
        outputs = [host.handle(mqtt_topic, p, 1) for p in payloads[i : i + MAX_BATCH]]
        sink.readings([r for out in outputs for r in out.readings])
    while outbox.pending()[0]:
        time.sleep(0.002)
    rate = len(payloads) * n / (time.perf_counter() - start)
    if mode == "process":
        forwarder.stop()
    else:
        stop.set()
        thread.join()
    for leftover in path.parent.glob(f"{path.stem}.*"):
        leftover.unlink(missing_ok=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics-per-payload", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4, help="passes over 256 payloads")
    args = parser.parse_args()
    n = args.metrics_per_payload
    base = load_settings()
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(
        update={"kafka": base.kafka.model_copy(update={"topic_prefix": prefix})}
    )
    ensure_topics(settings, lambda _: None)
    name = topic("telemetry").name(prefix)
    payloads = _ddata(n) * args.rounds
    mqtt_topic = f"spBv1.0/{GROUP}/DDATA/{NODE}/{DEVICE}"
    total = len(payloads) * n
    try:
        # Pre-built records for the bare producer: exactly what the host path sends.
        host = _host(n)
        records = [r.to_record() for p in payloads for r in host.handle(mqtt_topic, p, 1).readings]
        producer = Producer(producer_config(settings.kafka))
        start = time.perf_counter()
        for record in records:
            _produce(producer, name, record["asset"].encode(), orjson.dumps(record))
            producer.poll(0)
        producer.flush()
        bare = len(records) / (time.perf_counter() - start)

        host = _host(n)
        producer = Producer(producer_config(settings.kafka))
        start = time.perf_counter()
        for payload in payloads:
            for reading in host.handle(mqtt_topic, payload, 1).readings:
                _produce(producer, name, reading.asset.encode(), orjson.dumps(reading.to_record()))
            producer.poll(0)
        producer.flush()
        direct = total / (time.perf_counter() - start)

        edge = {}
        for mode in ("thread", "process"):
            edge[mode] = _durable_path(settings, prefix, mode, payloads, mqtt_topic, n)
    finally:
        admin = admin_client(settings)
        for future in admin.delete_topics([t.name(prefix) for t in TOPICS]).values():
            future.result()
    print(f"\nSparkplug host to Kafka, {n} metrics per DDATA, {total:,} metrics (one edge process)")
    print(f"{'path':<30}{'metrics/s':>12}{'vs bare':>9}")
    rows = (("bare", bare), ("host", direct), ("host+edge, forwarder thread", edge["thread"]),
            ("host+edge, forwarder process", edge["process"]))  # fmt: skip
    for label, rate in rows:
        print(f"{label:<30}{rate:>12,.0f}{rate / bare:>9.2f}")
    print("\naim: host+edge >= 100,000 metrics/s and >= 0.60 of bare")


if __name__ == "__main__":
    main()
