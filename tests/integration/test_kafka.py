"""Kafka: the declared topics exist as declared, and records round-trip keyed by asset, in order."""

import uuid

import orjson
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import ConfigResource

from plantlake.adapters.kafka import produce
from plantlake.core.topics import TOPICS, topic
from plantlake.services.kafka import admin_client

pytestmark = pytest.mark.integration


def test_declared_topics_exist_with_their_partitions_and_policies(settings):
    admin = admin_client(settings)
    existing = admin.list_topics(timeout=10).topics
    prefix = settings.kafka.topic_prefix
    for declared in TOPICS:
        name = declared.name(prefix)
        assert name in existing, name
        assert len(existing[name].partitions) >= declared.klass.partitions
        resource = ConfigResource("topic", name)
        configs = admin.describe_configs([resource])[resource].result()
        for key, value in declared.klass.config().items():
            assert configs[key].value == value, (name, key)


def test_produce_consume_round_trip_keeps_per_asset_order(isolated_kafka):
    settings = isolated_kafka
    name = topic("telemetry").name(settings.kafka.topic_prefix)
    run = uuid.uuid4().hex
    assets = [f"site/line/asset-{i}" for i in range(4)]
    records = [{"asset": a, "run": run, "n": n} for n in range(50) for a in assets]
    assert produce(settings.kafka, name, records) == len(records)

    consumer = Consumer({
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": f"test-{run}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe([name])
    seen: dict[str, list[int]] = {a: [] for a in assets}
    partitions: dict[str, set[int]] = {a: set() for a in assets}
    try:
        for _ in range(600):
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if sum(map(len, seen.values())) == len(records):
                    break
                continue
            body = orjson.loads(msg.value())
            assert msg.key().decode() == body["asset"]
            seen[body["asset"]].append(body["n"])
            partitions[body["asset"]].add(msg.partition())
    finally:
        consumer.close()
    for asset in assets:
        assert seen[asset] == list(range(50)), asset
        assert len(partitions[asset]) == 1  # keyed by asset: one partition, so ordered
