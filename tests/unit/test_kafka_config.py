import re

from plantlake.adapters.kafka import producer_config
from plantlake.core.config import KafkaSettings
from plantlake.services.kafka import new_cluster_id, server_properties


def test_single_node_kraft_on_loopback(tmp_path):
    props = dict(
        line.split("=", 1)
        for line in server_properties(
            host="127.0.0.1", port=9092, controller_port=9093, log_dir=tmp_path
        ).splitlines()
    )
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["auto.create.topics.enable"] == "false"
    assert props["offsets.topic.replication.factor"] == "1"


def test_cluster_id_is_kafka_uuid_form():
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", new_cluster_id())


def test_producer_is_idempotent_and_waits_for_all_replicas():
    conf = producer_config(KafkaSettings())
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["linger.ms"] > 0
