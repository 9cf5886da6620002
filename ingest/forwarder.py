"""The forwarder: drains the edge buffer into Kafka in order, acknowledging only what Kafka
acknowledged (ingest layer). Survives broker outages by waiting; loses nothing."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from plantlake.config import KafkaSettings
from plantlake.ingest.buffer import Outbox
from plantlake.ingest.kafka_sink import producer_config

log = logging.getLogger("plantlake.forwarder")

# Headers that make every record's identity explicit, so consumers can drop the duplicates an
# edge crash between "Kafka acked" and "buffer forgot" would cause.
INSTANCE_HEADER = "plantlake-edge-instance"
SEQ_HEADER = "plantlake-edge-seq"


@dataclass
class ForwarderStats:
    sent: int = 0
    failed_batches: int = 0
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


class Forwarder:
    def __init__(self, outbox: Outbox, kafka: KafkaSettings, *, batch: int = 20_000,
                 message_timeout_ms: int = 300_000):  # fmt: skip
        from confluent_kafka import Producer

        self.outbox = outbox
        self.batch = batch
        self.stats = ForwarderStats()
        # A long message timeout lets the idempotent producer ride out a broker restart by
        # itself (exactly once, in order); past it, the batch is produced again from the buffer.
        conf = producer_config(kafka) | {"message.timeout.ms": message_timeout_ms, "logger": log}
        self._producer = Producer(conf)
        self._instance = outbox.instance.encode()

    def forward_once(self, stop: threading.Event | None = None) -> int:
        """Send one batch from the buffer; returns how many records Kafka acknowledged.

        Waits for the batch's deliveries (through a broker outage, up to the message timeout)
        unless `stop` is set; what is not acknowledged stays in the buffer.
        """
        entries = self.outbox.peek(self.batch)
        if not entries:
            return 0
        failed: list[int] = []

        def on_delivery(err, msg) -> None:
            # Only failures need to know which record they were (the rare path pays).
            if err is not None:
                self.stats.last_error = str(err)
                failed.append(int(dict(msg.headers())[SEQ_HEADER]))

        instance = (INSTANCE_HEADER, self._instance)
        for entry in entries:
            headers = [instance, (SEQ_HEADER, str(entry.seq).encode())]
            while True:
                try:
                    self._producer.produce(entry.topic, key=entry.key, value=entry.value,
                                           headers=headers, on_delivery=on_delivery)  # fmt: skip
                    break
                except BufferError:  # local queue full: let deliveries drain
                    self._producer.poll(0.1)
            self._producer.poll(0)
        while self._producer.flush(0.5) and not (stop and stop.is_set()):
            pass
        if self._producer.flush(0):
            failed.append(entries[0].seq)  # stopped while waiting: acknowledge nothing unconfirmed
        # Acknowledge only the prefix before the first failure, so order is kept.
        first_failed = min(failed, default=None)
        acked = entries[-1].seq if first_failed is None else first_failed - 1
        if acked >= entries[0].seq:
            self.outbox.ack(acked)
        count = sum(1 for e in entries if e.seq <= acked)
        self.stats.sent += count
        if count < len(entries):
            self.stats.failed_batches += 1
        return count

    def run(self, stop: threading.Event, *, idle_s: float = 0.05) -> None:
        """Forward until `stop` is set and the buffer is drained (or stop is set twice as long)."""
        backoff = 0.5
        while True:
            try:
                sent = self.forward_once(stop)
            except Exception as exc:  # never let the forwarder thread die with records waiting
                self.stats.last_error = str(exc)
                log.exception("forwarder batch failed")
                sent = -1
            if sent < 0 or (sent == 0 and self.outbox.pending()[0]):
                log.warning(
                    "Kafka unavailable (%s); retrying in %.1fs", self.stats.last_error, backoff
                )
                if stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            if sent == 0:
                if stop.is_set():
                    return
                time.sleep(idle_s)
