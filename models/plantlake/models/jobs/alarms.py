"""The alarms topic (models layer, Kafka adapter): one alarm per newly opened work order, sent once.

An order is announced in two steps that no transaction spans: Kafka acknowledges the alarm, then
gold.work_orders stamps the order's `alerted_at`. A job killed between the two leaves an order
that looks unannounced, and the next run would send its alarm again. So before sending, the
announcer reads back the tail of the alarms topic and skips every order an alarm already names;
such an order is only stamped. The tail (`ALARMS_READ_BACK` records per partition) reaches far
further back than the alarms one micro-batch can send before a crash.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import orjson
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from plantlake.core.config import KafkaSettings, Settings
from plantlake.core.contracts import GOLD_WORK_ORDERS
from plantlake.core.errors import SourceError
from plantlake.core.topics import topic
from plantlake.models.logic.work_orders import WorkOrder, alarm_record

ALARMS_READ_BACK = 1000


def announced_work_orders(
    kafka: KafkaSettings, name: str, *, read_back: int = ALARMS_READ_BACK, timeout_s: float = 20.0
) -> set[str]:
    """`work_order_id` of the last `read_back` alarms of every partition of topic `name`."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(kafka.client_config() | {
        "group.id": f"plantlake-alarms-read-back-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
    })  # fmt: skip
    try:
        partitions = consumer.list_topics(name, timeout=timeout_s).topics[name].partitions
        assignment, ends = [], {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=timeout_s)
            if high > low:
                assignment.append(TopicPartition(name, p, max(low, high - read_back)))
                ends[p] = high
        found: set[str] = set()
        if not assignment:
            return found
        consumer.assign(assignment)
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise SourceError(
                    f"Kafka topic {name}: could not read back the last alarms within "
                    f"{timeout_s:.0f}s, so it cannot tell which are already sent.",
                    hint="Check `plantlake status` for the broker; the next batch retries.",
                )
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                record = orjson.loads(msg.value() or b"")  # a tombstone is not an alarm either
            except orjson.JSONDecodeError:
                record = None  # not an alarm (the topic is shared): nothing it can name
            if isinstance(record, dict) and record.get("work_order_id"):
                found.add(record["work_order_id"])
            offset = msg.offset() or 0  # a polled record always has one
            if offset + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        return found
    finally:
        consumer.close()


def announce(spark: SparkSession, settings: Settings, orders: Sequence[WorkOrder]) -> int:
    """Send one alarm per order not already on `<prefix>.alarms` (keyed by asset), then stamp
    every order's `alerted_at`; returns how many alarms were sent."""
    from plantlake.adapters.kafka import produce

    if not orders:
        return 0
    name = topic("alarms").name(settings.kafka.topic_prefix)
    already = announced_work_orders(settings.kafka, name)
    sent = produce(
        settings.kafka, name, [alarm_record(o) for o in orders if o.work_order_id not in already]
    )
    ids = [o.work_order_id for o in orders]
    DeltaTable.forPath(spark, GOLD_WORK_ORDERS.path(settings.lake)).update(
        F.col("work_order_id").isin(ids) & F.col("alerted_at").isNull(),
        {"alerted_at": F.current_timestamp()},
    )
    return sent
