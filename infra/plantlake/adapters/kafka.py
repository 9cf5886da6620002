"""The Kafka producer adapter of the edge: idempotent, acks=all, compressed, keyed by asset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

from plantlake.core.config import KafkaSettings
from plantlake.core.errors import SinkError


def producer_config(kafka: KafkaSettings) -> dict:
    return kafka.client_config() | {
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "zstd",
        # A few ms of batching is what makes Python producers fast; never flush per message.
        "linger.ms": 5,
        "batch.num.messages": 10000,
        # The Java clients' partitioner (librdkafka defaults to crc32), so an asset lands on the
        # same partition whichever client, Python edge or Spark job, produced it.
        "partitioner": "murmur2_random",
    }


def send_waiting(producer, topic: str, *, wait_s: float = 0.1, **message) -> None:
    """Queue one message; while the producer's local queue is full, serve delivery reports
    (which frees it) and retry: back-pressure from the broker, not an error."""
    while True:
        try:
            producer.produce(topic, **message)
            return
        except BufferError:
            producer.poll(wait_s)


def produce(
    kafka: KafkaSettings, topic: str, records: Iterable[Mapping], *, timeout: float = 30.0
) -> int:
    """Send records keyed by their `asset`; returns how many the broker acknowledged.

    Raises SinkError naming the topic if any record was not acknowledged within `timeout`.
    """
    from confluent_kafka import Producer

    producer = Producer(producer_config(kafka))
    failures: list[str] = []
    sent = 0

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    for record in records:
        send_waiting(producer, topic, key=str(record.get("asset", "")).encode(),
                     value=orjson.dumps(record), on_delivery=on_delivery)  # fmt: skip
        producer.poll(0)
        sent += 1
    remaining = producer.flush(timeout)
    if remaining or failures:
        raise SinkError(
            f"Kafka topic {topic} at {kafka.bootstrap_servers}: {remaining} record(s) unsent, "
            f"{len(failures)} refused ({failures[:3]}).",
            hint="Check `plantlake status` for the broker.",
        )
    return sent


def produce_raw(kafka: KafkaSettings, topic: str, key: bytes, value: bytes) -> None:
    """Send one raw payload (e.g. a deliberately malformed one) and wait for its acknowledgement."""
    from confluent_kafka import Producer

    producer = Producer(producer_config(kafka))
    producer.produce(topic, key=key, value=value)
    if producer.flush(10):
        raise SinkError(f"Kafka topic {topic}: the record was not acknowledged within 10s.")
