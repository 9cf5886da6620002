"""The hot path: Kafka telemetry and lifecycle events to gold.twin_state in about a second (gold job).

Spark micro-batches cost seconds each, whatever their size (../shared/PERFORMANCE.md), so the
twin is kept by this lightweight consumer instead, and Spark keeps the volume work (bronze,
silver, aggregates, features). Each cycle of `flush_interval_ms`:
1. read what Kafka has (telemetry, as a member of the consumer group; lifecycle, all of it);
2. prepare each reading as silver does (registry, units) and evaluate the expectation rules on
   it (`reading_checks`), so a reading silver would hold back never moves the twin;
3. fold the Good kept readings into the twin (newest wins, `twin_fold`) and recompute liveness;
4. replace this member's share of gold.twin_state through delta-rs (one commit);
5. send the changed rows to the compacted asset_state topic;
6. only then commit the Kafka offsets. A crash before 6 replays readings the twin may already
   hold; the fold is idempotent, so the replay changes nothing (exactly once for the twin).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from plantlake.core.clock import now_ms
from plantlake.core.config import Settings
from plantlake.core.contracts import (
    GOLD_TWIN_STATE,
    REFERENCE_ASSET_REGISTRY,
    REFERENCE_UNITS,
    record_errors,
)
from plantlake.core.errors import SourceError
from plantlake.core.topics import topic
from plantlake.pipelines.jobs.twin_store import (
    read_reference,
    read_twin,
    twin_batch,
    vacuum_twin,
    write_twin_share,
)
from plantlake.pipelines.transforms.expectations import Rule, load_rules
from plantlake.pipelines.transforms.reading_checks import (
    ReadingChecker,
    Reference,
    SensorChecks,
    prepare,
)
from plantlake.pipelines.transforms.twin_fold import Twin, TwinRow
from plantlake.services.minio import delta_rs_options

# Epoch-millisecond stamps outside 1970..2100 are not times (nanosecond or microsecond stamps).
_LATEST_MS = 4_102_444_800_000


@dataclass
class HotPathStats:
    """What the hot path did, for its status line and the benchmarks."""

    readings: int = 0
    refused: int = 0  # not canonical records (bronze dead-letters them)
    held_back: int = 0  # failed a blocking rule (silver quarantines or drops them)
    lifecycle_events: int = 0
    commits: int = 0
    changed_rows: int = 0
    commit_seconds: deque = field(default_factory=lambda: deque(maxlen=1000))
    # receive time -> twin commit of each changed row's value, in ms (the freshness figure).
    freshness_ms: deque = field(default_factory=lambda: deque(maxlen=100_000))

    def percentiles(self, last: int = 20_000) -> tuple[float, float] | None:
        """(p50, p99) in seconds of the receive -> twin commit times of the last `last` values."""
        recent = sorted(list(self.freshness_ms)[-last:])
        if not recent:
            return None
        return recent[len(recent) // 2] / 1000, recent[int(len(recent) * 0.99)] / 1000

    def summary(self) -> str:
        commit = (
            f"commit p50 {statistics.median(self.commit_seconds) * 1000:.0f} ms"
            if self.commit_seconds
            else "no commit yet"
        )
        fresh = self.percentiles(last=len(self.freshness_ms))
        age = (
            f"receive->twin p50 {fresh[0]:.2f} s, p99 {fresh[1]:.2f} s" if fresh else "no value yet"
        )
        return (
            f"{self.readings} readings ({self.held_back} held back, {self.refused} refused), "
            f"{self.lifecycle_events} lifecycle events, {self.commits} commits, {commit}, {age}"
        )


def _consumer_config(settings: Settings, group_id: str) -> dict:
    return settings.kafka.client_config() | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # The broker answers as soon as data is there; this caps the wait when it is not.
        "fetch.wait.max.ms": 50,
    }


class HotPath:
    """One member of the hot path's consumer group; `run` until stopped (or caught up, `once`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        rules: Sequence[Rule] | None = None,
        log: Callable[[str], None] = print,
        clock: Callable[[], int] = now_ms,
        status_path: Path | None = None,
    ):
        self.settings = settings
        self.options = settings.hot_path
        self.checker = ReadingChecker(load_rules() if rules is None else rules)
        self.log = log
        self.clock = clock
        self.status_path = status_path
        self.last_commit_ms: int | None = None
        self.lag = 0
        self.storage = delta_rs_options(settings)
        self.twin_path = GOLD_TWIN_STATE.path(settings.lake)
        prefix = settings.kafka.topic_prefix
        self.telemetry_topic = topic("telemetry").name(prefix)
        self.lifecycle_topic = topic("lifecycle").name(prefix)
        self.state_topic = topic("asset_state").name(prefix)
        self.twin = Twin()
        self.checks: dict[tuple[str, str], SensorChecks] = {}
        self.owned: set[int] = set()
        self.stats = HotPathStats()
        self._reference_at = 0.0
        self._reference: Reference | None = None
        self._pending: set[tuple[str, str]] = set()  # rows whose value changed since the commit
        self._consumed = False  # readings folded since the last commit (their offsets not yet)
        self._consumer = None
        self._last_commit = 0.0

    # -- reference data -------------------------------------------------------------------
    def _refresh_reference(self) -> None:
        lake = self.settings.lake
        self._reference = read_reference(
            REFERENCE_UNITS.path(lake), REFERENCE_ASSET_REGISTRY.path(lake), self.storage
        )
        self._reference_at = time.monotonic()

    # -- Kafka assignment -------------------------------------------------------------------
    def _on_assign(self, consumer, partitions) -> None:
        wanted = {p.partition for p in partitions}
        added = wanted - self.owned
        self._drop(self.owned - wanted)
        if added:
            rows, checks = read_twin(self.twin_path, self.storage, partitions=added)
            for row in rows:
                self.twin.rows[(row.asset, row.sensor)] = row
            self.checks.update(checks)
        self.owned = wanted
        self.log(f"hot path: assigned partitions {sorted(wanted)} of {self.telemetry_topic} "
                 f"({len(self.twin.rows)} twin rows)")  # fmt: skip

    def _on_revoke(self, consumer, partitions) -> None:
        if self._consumed or self._pending:
            self._commit(consumer)
        gone = {p.partition for p in partitions}
        self._drop(gone)
        self.owned -= gone

    def _drop(self, partitions: set[int]) -> None:
        if not partitions:
            return
        for key in [k for k, r in self.twin.rows.items() if r.kafka_partition in partitions]:
            del self.twin.rows[key]
            self.checks.pop(key, None)

    # -- folding ----------------------------------------------------------------------------
    def fold_reading(self, message, now_ms: int) -> None:
        self.stats.readings += 1
        try:
            record = orjson.loads(message.value())
        except orjson.JSONDecodeError:
            self.stats.refused += 1
            return
        if not isinstance(record, dict) or record_errors(record):
            self.stats.refused += 1
            return
        times = (record["event_time_ms"], record["receive_time_ms"])
        if not all(0 <= t < _LATEST_MS for t in times):
            self.stats.refused += 1
            return
        if self._reference is None:  # start() reads it before the first poll
            raise AssertionError("the hot path polled before reading its reference data")
        reading = prepare(record, self._reference)
        key = (reading.asset, reading.sensor)
        checks = self.checks.get(key)
        if checks is None:
            checks = self.checks[key] = SensorChecks()
        failed = self.checker.failed_rules(reading, checks, now_ms=now_ms)
        if self.checker.blocked(failed):
            self.stats.held_back += 1
            return
        if reading.quality != "Good" or reading.value is None:
            return
        candidate = TwinRow(
            asset=reading.asset, sensor=reading.sensor, asset_class=reading.asset_class,
            quantity=reading.quantity, value=reading.value, unit=reading.unit,
            quality=reading.quality, event_time_ms=reading.event_time_ms,
            receive_time_ms=reading.receive_time_ms,
            source_protocol=record["source_protocol"], source_node=record["source_node"],
            sequence=record.get("sequence"), kafka_topic=message.topic(),
            kafka_partition=message.partition(), kafka_offset=message.offset(),
        )  # fmt: skip
        if self.twin.offer(candidate):
            self._pending.add(key)

    def fold_lifecycle(self, message, now_ms: int) -> None:
        try:
            event = orjson.loads(message.value())
            if not isinstance(event.get("event_time_ms"), int) or not event.get("source_node"):
                raise ValueError("not a lifecycle event")
        except (orjson.JSONDecodeError, AttributeError, ValueError):
            return  # bronze dead-letters it
        self.stats.lifecycle_events += 1
        self.twin.lifecycle.add(event, now_ms=now_ms)

    # -- commit -------------------------------------------------------------------------------
    def _commit(self, consumer) -> None:
        """Write this member's share of the twin, announce changes, then commit the offsets."""
        from confluent_kafka import TopicPartition

        now = self.clock()
        changed = self._pending | self.twin.refresh(now)
        owned = self.owned
        rows = [r for r in self.twin.rows.values() if r.kafka_partition in owned]
        started = time.monotonic()
        version = write_twin_share(
            self.twin_path, self.storage, twin_batch(rows, self.checks), partitions=owned,
            retention_hours=self.options.retention_hours,
        )  # fmt: skip
        committed_ms = self.last_commit_ms = self.clock()
        self.stats.commit_seconds.append(time.monotonic() - started)
        self.stats.commits += 1
        self._announce(changed, version=version, committed_ms=committed_ms)
        positions = [
            TopicPartition(p.topic, p.partition, p.offset)
            for p in consumer.position([TopicPartition(self.telemetry_topic, n) for n in owned])
            if p.offset >= 0
        ]
        if positions:
            consumer.commit(offsets=positions, asynchronous=False)
        self._pending.clear()
        self._consumed = False
        self._last_commit = time.monotonic()

    def _announce(self, keys: set, *, version: int, committed_ms: int) -> None:
        for key in keys:
            row = self.twin.rows.get(key)
            if row is None:
                continue
            if key in self._pending:
                self.stats.freshness_ms.append(committed_ms - row.receive_time_ms)
            message = {
                "asset": row.asset, "sensor": row.sensor, "value": row.value, "unit": row.unit,
                "quantity": row.quantity, "event_time_ms": row.event_time_ms,
                "receive_time_ms": row.receive_time_ms, "status": row.status,
                "status_reason": row.status_reason, "status_since_ms": row.status_since_ms,
                "twin_version": version, "twin_committed_ms": committed_ms,
                "change": "value" if key in self._pending else "status",
            }  # fmt: skip
            self._producer.produce(
                self.state_topic, key=f"{row.asset}/{row.sensor}".encode(),
                value=orjson.dumps(message),
            )  # fmt: skip
        self.stats.changed_rows += len(keys)
        self._producer.poll(0)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> HotPathStats:
        """Keep the twin until `stop` is set (or, `once`, until caught up with both topics).

        Raises SourceError when the reference tables are missing or Kafka cannot be reached.
        """
        from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

        stop = stop or threading.Event()
        self._refresh_reference()
        conf = _consumer_config(self.settings, self.options.group_id)
        # Static membership: a member restarted after a crash reclaims its partitions at once
        # instead of waiting for the broker to time the dead one out.
        conf["group.instance.id"] = f"{self.options.group_id}-{self.options.member}"
        conf["session.timeout.ms"] = 10_000
        consumer = Consumer(conf)
        lifecycle = Consumer(_consumer_config(self.settings, f"{self.options.group_id}-lifecycle")
                             | {"enable.partition.eof": True})  # fmt: skip
        self._producer = Producer(self.settings.kafka.client_config() | {
            "linger.ms": 5, "compression.type": "zstd", "enable.idempotence": True, "acks": "all",
        })  # fmt: skip
        try:
            try:
                meta = lifecycle.list_topics(self.lifecycle_topic, timeout=10)
            except KafkaException as exc:
                raise SourceError(
                    f"Kafka at {self.settings.kafka.bootstrap_servers} did not answer: {exc}",
                    hint="Check `plantlake status` for the broker.",
                ) from exc
            parts = meta.topics[self.lifecycle_topic].partitions
            # Every member needs every lifecycle event (a node death touches any sensor), and
            # the fold is a max per scope, so the topic is read from its start on every start.
            lifecycle.assign([TopicPartition(self.lifecycle_topic, p, -2) for p in parts])
            self._catch_up_lifecycle(lifecycle, len(parts))
            consumer.subscribe(
                [self.telemetry_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            self._loop(consumer, lifecycle, once=once, stop=stop)
            if self._consumed or self._pending:
                self._commit(consumer)
        finally:
            self._producer.flush(10)
            consumer.close()
            lifecycle.close()
        return self.stats

    def _catch_up_lifecycle(self, lifecycle, partitions: int) -> None:
        from confluent_kafka import KafkaError

        # Short polls: `consume` waits out its whole timeout unless the batch fills, and every
        # second spent here is a second the restarted twin is not being kept.
        at_end: set[int] = set()
        idle_since = time.monotonic()
        while len(at_end) < partitions and time.monotonic() - idle_since < 1.0:
            messages = lifecycle.consume(num_messages=1000, timeout=0.05)
            if messages:
                idle_since = time.monotonic()
            now = self.clock()
            for message in messages:
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                    continue
                self.fold_lifecycle(message, now)

    def _lag(self, consumer) -> int:
        """Readings in Kafka not yet folded, over this member's partitions."""
        from confluent_kafka import TopicPartition

        parts = [TopicPartition(self.telemetry_topic, n) for n in self.owned]
        behind = 0
        for p in consumer.position(parts):
            _low, high = consumer.get_watermark_offsets(p, timeout=2, cached=False)
            behind += max(0, high - p.offset) if p.offset >= 0 else 0
        return behind

    def _report(self, consumer, *, log: bool) -> None:
        """The status file `pipeline up` shows (rewritten every 2 s), and a log line now and then."""
        self.lag = self._lag(consumer)
        if log:
            self.log(f"hot path: {self.stats.summary()}, lag {self.lag}")
        if self.status_path is None:
            return
        fresh = self.stats.percentiles()
        status = {
            "pid": os.getpid(), "at_ms": self.clock(), "readings": self.stats.readings,
            "held_back": self.stats.held_back, "refused": self.stats.refused,
            "commits": self.stats.commits, "lag": self.lag, "last_commit_ms": self.last_commit_ms,
            "twin_rows": len(self.twin.rows), "partitions": sorted(self.owned),
            "freshness_p50_s": fresh and fresh[0], "freshness_p99_s": fresh and fresh[1],
        }  # fmt: skip
        self.status_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.status_path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(status))
        temporary.replace(self.status_path)

    def _caught_up(self, consumer) -> bool:
        from confluent_kafka import TopicPartition

        if not self.owned:
            return False
        parts = [TopicPartition(self.telemetry_topic, n) for n in self.owned]
        committed = {p.partition: p.offset for p in consumer.committed(parts, timeout=10)}
        for p in consumer.position(parts):
            _low, high = consumer.get_watermark_offsets(p, timeout=10, cached=False)
            position = p.offset if p.offset >= 0 else committed.get(p.partition, -1)
            if high > 0 and position < high:
                return False
        return True

    def _loop(self, consumer, lifecycle, *, once: bool, stop: threading.Event) -> None:
        interval = self.options.flush_interval_ms / 1000
        heartbeat = self.options.heartbeat_seconds
        vacuum_every = self.options.vacuum_interval_seconds
        last_vacuum = last_report = last_log = time.monotonic()
        idle_polls = 0
        while not stop.is_set():
            now_mono = time.monotonic()
            if now_mono - self._reference_at > self.options.reference_refresh_seconds:
                self._refresh_reference()
            wait = max(0.0, interval - (now_mono - self._last_commit))
            messages = consumer.consume(num_messages=self.options.max_poll_records, timeout=wait)
            now = self.clock()
            for message in messages:
                if message.error() is None:
                    self.fold_reading(message, now)
            self._consumed |= bool(messages)
            for message in lifecycle.consume(num_messages=1000, timeout=0):
                if message.error() is None:
                    self.fold_lifecycle(message, now)
            since_commit = time.monotonic() - self._last_commit
            due = since_commit >= interval and (self._consumed or self._pending)
            if self.owned and (due or since_commit >= heartbeat):
                self._commit(consumer)
            if time.monotonic() - last_vacuum > vacuum_every:
                removed = vacuum_twin(self.twin_path, self.storage,
                                      retention_hours=self.options.retention_hours)  # fmt: skip
                self.log(f"hot path: vacuumed {removed} replaced twin files")
                last_vacuum = time.monotonic()
            if time.monotonic() - last_report > 2:
                self._report(consumer, log=time.monotonic() - last_log > 10)
                last_report = time.monotonic()
                if time.monotonic() - last_log > 10:
                    last_log = last_report
            if once:
                idle_polls = 0 if messages else idle_polls + 1
                if idle_polls >= 2 and self._caught_up(consumer):
                    return
