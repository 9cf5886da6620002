"""Apache Kafka in KRaft mode (one combined broker+controller), run from Maven Central jars."""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path

from plantlake.core.config import Settings
from plantlake.core.topics import TOPICS
from plantlake.services.base import Service
from plantlake.services.jars import ensure_kafka_jars, kafka_jar_dir
from plantlake.services.java import java_home
from plantlake.services.process import Launch, Report, run_logged

_LOGGER = logging.getLogger("plantlake.kafka")
LOG4J2 = Path(__file__).resolve().parent / "kafka_config" / "log4j2.yaml"


def server_properties(*, host: str, port: int, controller_port: int, log_dir: Path) -> str:
    """A single-node KRaft configuration on loopback."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Kafka 4's dynamic quorum; storage is formatted with --standalone to match.
        "controller.quorum.bootstrap.servers": f"{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        # One broker: every internal topic has a single replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        # Topics come only from plantlake's declarations, never from a typo in a producer.
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "3",
        # Two cores: a small thread budget leaves room for Spark.
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in Kafka's URL-safe base64 form."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def admin_client(settings: Settings):
    from confluent_kafka.admin import AdminClient

    # librdkafka logs every failed connection to stderr; route it to Python logging instead.
    # confluent-kafka takes a logging.Logger for "logger"; its type hints only list scalars.
    return AdminClient(settings.kafka.client_config() | {"logger": _LOGGER})  # type: ignore[arg-type]


def host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0]
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


class KafkaService(Service):
    name = "kafka"
    port_setting = "PLANTLAKE_KAFKA__BOOTSTRAP_SERVERS / PLANTLAKE_KAFKA__CONTROLLER_PORT"
    start_timeout = 90.0

    @property
    def managed(self) -> bool:
        return self.settings.kafka.managed

    def endpoint(self) -> str:
        return self.settings.kafka.bootstrap_servers

    def ports(self) -> list[tuple[str, int]]:
        host, port = host_port(self.settings.kafka.bootstrap_servers)
        return [(host, port), (host, self.settings.kafka.controller_port)]

    def install(self, report: Report) -> None:
        ensure_kafka_jars(self.settings, report)

    @property
    def _config(self) -> Path:
        return self.data_dir / "server.properties"

    def _java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            str(java_home() / "bin" / "java"), f"-Xmx{heap}", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2}",
            "-cp", f"{kafka_jar_dir(self.settings)}/*", main, *args,
        ]  # fmt: skip

    def prepare(self, report: Report) -> None:
        host, port = host_port(self.settings.kafka.bootstrap_servers)
        log_dir = self.data_dir / "kraft-logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._config.write_text(
            server_properties(
                host=host, port=port, controller_port=self.settings.kafka.controller_port,
                log_dir=log_dir,
            )
        )  # fmt: skip
        if (log_dir / "meta.properties").exists():
            return
        report("formatting KRaft storage")
        run_logged(
            # `=` form: a cluster id may start with "-", which argparse would take for an option.
            self._java("kafka.tools.StorageTool", "format", f"--cluster-id={new_cluster_id()}",
                       "--config", str(self._config), "--standalone", "--ignore-formatted"),
            log=self.log, what="Formatting Kafka storage",
            hint=f"Remove {log_dir} if it is damaged, then run `plantlake up` again.",
        )  # fmt: skip

    def launch(self) -> Launch:
        heap = self.settings.kafka.heap
        return self._launch(self._java("kafka.Kafka", str(self._config), heap=heap))

    def probe(self) -> str:
        metadata = admin_client(self.settings).list_topics(timeout=2)
        return f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)"

    def configure(self, report: Report) -> None:
        ensure_topics(self.settings, report)


def ensure_topics(settings: Settings, report: Report) -> None:
    """Create every declared topic that is missing; widen one with too few partitions."""
    from confluent_kafka.admin import NewPartitions, NewTopic

    admin = admin_client(settings)
    existing = admin.list_topics(timeout=10).topics
    prefix = settings.kafka.topic_prefix
    wanted = [
        NewTopic(t.name(prefix), num_partitions=t.klass.partitions, replication_factor=1,
                 config=t.klass.config())
        for t in TOPICS if t.name(prefix) not in existing
    ]  # fmt: skip
    for name, future in admin.create_topics(wanted).items() if wanted else []:
        future.result()
        report(f"created topic {name}")
    grow = [
        NewPartitions(t.name(prefix), t.klass.partitions)
        for t in TOPICS
        if t.name(prefix) in existing
        and len(existing[t.name(prefix)].partitions) < t.klass.partitions
    ]
    for name, future in admin.create_partitions(grow).items() if grow else []:
        future.result()
        report(f"widened topic {name}")


def delete_prefixed_topics(settings: Settings) -> list[str]:
    """Delete every topic under the settings' topic prefix (a disposable prefix: tests, the ML
    demo); returns the names deleted."""
    admin = admin_client(settings)  # kept alive until its futures resolve
    prefix = settings.kafka.topic_prefix + "."
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    for future in admin.delete_topics(names).values() if names else []:
        future.result()
    return names
