"""The forwarder: drains the edge buffer into Kafka in order, acknowledging only what Kafka
acknowledged (ingest layer).

What can happen to a record, and what the forwarder does:
- Kafka is down, for seconds or days: the producer never times a record out
  (`message.timeout.ms` 0), so it waits and then delivers everything once, in order. A timeout
  would fail a record while later ones of the same asset got through, and sending it again
  would put it behind them.
- Kafka refuses one record for good (too large, say): the record becomes a dead letter, with
  its size, the reason and the start of its payload. The forwarder moves on.
- The producer hits a fatal error (the idempotent producer lost its guarantees): the forwarder
  makes a new producer and sends again what was not acknowledged. Those records may reach Kafka
  twice; each carries its edge identity in headers, and the count is logged.
- The process stops or is killed with records in flight: they stay in the buffer, and the next
  run sends them, possibly a second time (at most one batch, counted the same way).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from plantlake.adapters.kafka import producer_config
from plantlake.core.config import KafkaSettings
from plantlake.core.records import DeadLetter
from plantlake.core.topics import INSTANCE_HEADER, SEQ_HEADER, topic
from plantlake.ingest.buffer import Entry, Outbox

log = logging.getLogger("plantlake.forwarder")

# How much of a refused payload its dead letter keeps (a refused record is often a huge one).
DEAD_LETTER_PAYLOAD_BYTES = 4096


@dataclass
class ForwarderStats:
    sent: int = 0
    dead_letters: int = 0
    resent: int = 0  # records to go again that Kafka may have (a fatal error, a stop mid-batch)
    producers: int = 0  # producers made (more than one: fatal errors were recovered from)
    failed_batches: int = 0
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


def refused_record(
    entry: Entry, reason: str, *, node: str, topic_name: str
) -> tuple[str, bytes, bytes]:
    """The dead letter (topic, key, value) for a buffered record Kafka will never take."""
    letter = DeadLetter(
        source_protocol="edge",
        source_node=node,
        reason=f"Kafka refused the record for {entry.topic} ({len(entry.value)} bytes): {reason};"
        f" raw holds its first {DEAD_LETTER_PAYLOAD_BYTES} bytes",
        raw=entry.value[:DEAD_LETTER_PAYLOAD_BYTES],
        receive_time_ms=entry.created_ms,
        origin=f"edge buffer seq {entry.seq}, key {entry.key[:200].decode(errors='replace')}",
    )
    return topic_name, letter.key.encode(), orjson.dumps(letter.to_record())


class Forwarder:
    def __init__(self, outbox: Outbox, kafka: KafkaSettings, *, batch: int = 20_000,
                 node: str = "edge"):  # fmt: skip
        """`node` names this edge process in the dead letters it writes."""
        self.outbox = outbox
        self.batch = batch
        self.node = node
        self.stats = ForwarderStats()
        self._dead_letter_topic = topic("dead_letter").name(kafka.topic_prefix)
        self._conf = producer_config(kafka) | {
            "message.timeout.ms": 0,  # never: see the module docstring
            # Only failures call back into Python: a callback per delivered record cost more
            # than producing it. Success is read from flush() reaching zero.
            "delivery.report.only.error": True,
            "logger": log,
            "error_cb": self._on_error,
        }
        self._fatal = threading.Event()
        self._producer = self._new_producer()
        self._instance = outbox.instance.encode()

    def _new_producer(self) -> Producer:
        self._fatal.clear()
        self.stats.producers += 1
        return Producer(self._conf)

    def _on_error(self, err) -> None:
        # Broker down, authentication, ...: librdkafka retries these itself; only say so.
        self.stats.last_error = str(err)
        if err.fatal():
            self._fatal.set()

    def forward_once(self, stop: threading.Event | None = None) -> int:
        """Send one batch from the buffer; returns how many records left the buffer (sent to
        Kafka, or refused by it and kept as dead letters).

        Waits for the batch's deliveries (through a broker outage, however long) unless `stop`
        is set or the producer failed fatally; what is not settled stays in the buffer.
        """
        entries = self.outbox.peek(self.batch)
        if not entries:
            return 0
        failed: dict[int, object] = {}  # seq -> KafkaError, for the deliveries that failed

        def on_delivery(err, msg) -> None:
            # Only failures need to know which record they were (the rare path pays).
            if err is not None:
                failed[int(dict(msg.headers())[SEQ_HEADER])] = err

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
                except KafkaException as exc:  # refused before sending (e.g. too large)
                    failed[entry.seq] = exc.args[0]
                    break
            self._producer.poll(0)
        while self._producer.flush(0.5) and not self._fatal.is_set():
            if stop and stop.is_set():
                break
        if self._fatal.is_set():
            self._producer.flush(5)  # a failed producer reports its outstanding records as failed
        return self._settle(entries, failed, in_flight=self._producer.flush(0))

    def _settle(self, entries: list[Entry], failed: dict, *, in_flight: int) -> int:
        """Acknowledge the longest prefix of the batch Kafka settled: delivered, or refused for
        good and kept as a dead letter. The rest stays in the buffer, in order."""
        letters, done = [], 0
        if in_flight == 0:  # else no one knows which records of the batch arrived
            for entry in entries:
                err = failed.get(entry.seq)
                if err is not None:
                    if not _refused_for_good(err):
                        break
                    letters.append(refused_record(entry, err.str(), node=self.node,
                                                  topic_name=self._dead_letter_topic))  # fmt: skip
                done += 1
        if done:
            self.outbox.ack(entries[done - 1].seq, replace=letters)
        self.stats.sent += done - len(letters)
        self.stats.dead_letters += len(letters)
        for letter in letters:
            log.warning("Kafka refused a buffered record for good; kept as a dead letter: %s",
                        orjson.loads(letter[2])["reason"])  # fmt: skip
        if done < len(entries):
            self.stats.failed_batches += 1
            # What follows the first unsettled record goes again; Kafka may have some of it.
            maybe_there = len(entries) - done - (len(failed) - len(letters))
            self.stats.resent += max(maybe_there, 0) if in_flight == 0 else len(entries) - done
        if self._fatal.is_set():
            log.error("Kafka producer failed fatally (%s); making a new one, %d record(s) go again "
                      "and may reach Kafka twice (identified by the %s/%s headers)",
                      self.stats.last_error, len(entries) - done, INSTANCE_HEADER, SEQ_HEADER)  # fmt: skip
            self._producer = self._new_producer()
        return done

    def close(self, timeout_s: float = 5.0) -> int:
        """Wait up to `timeout_s` for records in flight; returns how many are still unsettled
        (they stay in the buffer and go again with the next run)."""
        return self._producer.flush(timeout_s)

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
                if stop.is_set():
                    return
                log.warning("nothing forwarded (%s); retrying in %.1fs", self.stats.last_error,
                            backoff)  # fmt: skip
                if stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            if sent == 0:
                if stop.is_set():
                    return
                time.sleep(idle_s)


# The errors that say "this record can never be sent", whatever is retried. Anything else (an
# outage, a fatal producer error, a topic missing or not authorized) keeps the record buffered.
_RECORD_ERRORS = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG, KafkaError.INVALID_MSG_SIZE,
})  # fmt: skip


def _refused_for_good(err: KafkaError) -> bool:
    return err.code() in _RECORD_ERRORS and not err.fatal()
