"""kill -9 of the hot path, five times at random points while a producer runs: the twin it is
left with after a restart equals an uninterrupted run over the same topic, row for row."""

import multiprocessing
import os
import random
import subprocess
import sys
import time

import pytest

from plantlake.core.config import LakeSettings
from plantlake.core.contracts import GOLD_TWIN_STATE
from plantlake.core.registry_entries import entry_rows
from plantlake.core.topics import topic
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs.hot_path import HotPath
from plantlake.pipelines.jobs.reference import load_reference
from plantlake.pipelines.jobs.twin_store import open_table
from plantlake.services.minio import delta_rs_options
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import plant_registry_entries
from tests.integration.test_restart import crash

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.stress]

CANONICAL = {"temperature": ("degC", 60.0), "pressure": ("bar", 5.0), "current": ("A", 20.0),
             "flow": ("m3/h", 30.0), "speed": ("rpm", 1480.0)}  # fmt: skip
# Compared with the uninterrupted run: everything but the hot path's clock and liveness.
COLUMNS = ("value", "unit", "event_time_ms", "kafka_partition", "kafka_offset", "rule_state")


def produce(bootstrap: str, topic_name: str, sensors, seconds: float, rate: int) -> None:
    """Readings at `rate` a second for `seconds` (its own process): plausible values, some
    implausible ones (held back), and one sensor stuck (held back once its run is long enough)."""
    import orjson
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    rng, sent, started = random.Random(11), 0, time.time()
    while time.time() < started + seconds:
        due = int((time.time() - started) * rate)
        for _ in range(due - sent):
            asset, sensor, quantity = sensors[sent % len(sensors)]
            unit, base = CANONICAL[quantity]
            now = int(time.time() * 1000)
            value = 700.0 if rng.random() < 0.02 else round(base * (1 + 0.1 * rng.random()), 3)
            if sent % len(sensors) == 0:
                value = 42.0  # the first sensor never moves
            record = {"schema_version": 1, "asset": asset, "sensor": sensor, "value": value,
                      "unit": unit, "quality": "Good", "event_time_ms": now - 600_000 + sent,
                      "receive_time_ms": now, "source_protocol": "opcua", "source_node": "kill",
                      "sequence": sent, "filter_version": "kill"}  # fmt: skip
            producer.produce(topic_name, key=asset.encode(), value=orjson.dumps(record))
            sent += 1
        producer.poll(0)
        time.sleep(0.01)
    assert producer.flush(30) == 0


def _start(settings, log):
    env = os.environ | {
        "PLANTLAKE_LAKE__ROOT": settings.lake.root,
        "PLANTLAKE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "PLANTLAKE_HOT_PATH__GROUP_ID": settings.hot_path.group_id,
        "PLANTLAKE_HOT_PATH__FLUSH_INTERVAL_MS": "300",
    }
    command = [sys.executable, "-c", "from plantlake.app.cli import main; main()", "pipeline", "run",
               "hot"]  # fmt: skip
    with log.open("a") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _twin(settings):
    table = open_table(GOLD_TWIN_STATE.path(settings.lake), delta_rs_options(settings))
    return {(r["asset"], r["sensor"]): tuple(r[c] for c in COLUMNS)
            for r in table.to_pyarrow_table().to_pylist()}  # fmt: skip


def test_the_hot_path_killed_five_times_equals_an_uninterrupted_run(hot_lake, spark, tmp_path):
    settings = hot_lake
    sensors = [(r["asset"], r["sensor"], r["quantity"])
               for r in entry_rows(plant_registry_entries(build_plant(settings.simulator.seed), default_window_features()))
               if r["quantity"] in CANONICAL and r["valid_to"] is None]  # fmt: skip
    producer = multiprocessing.Process(target=produce, args=(
        settings.kafka.bootstrap_servers, topic("telemetry").name(settings.kafka.topic_prefix),
        sensors, 30.0, 600))  # fmt: skip
    producer.start()
    log, rng = tmp_path / "hot.log", random.Random(5)
    for _ in range(5):
        job = _start(settings, log)
        time.sleep(rng.uniform(2.5, 6.0))  # start-up is about 3 s: kills land mid-stream
        assert job.poll() is None, log.read_text()[-3000:]
        crash(job)
    producer.join()
    assert producer.exitcode == 0
    HotPath(settings, log=print).run(once=True)  # the restart that catches up
    got = _twin(settings)

    reference = settings.model_copy(update={
        "lake": LakeSettings(root=settings.lake.root + "-reference",
                             checkpoint_root=settings.lake.checkpoint_root),
        "hot_path": settings.hot_path.model_copy(
            update={"group_id": settings.hot_path.group_id + "-reference"}),
    })  # fmt: skip
    load_reference(
        spark,
        reference,
        plant_registry_entries(build_plant(settings.simulator.seed), default_window_features()),
    )
    HotPath(reference, log=print).run(once=True)
    expected = _twin(reference)

    assert len(expected) == len(sensors)
    assert got == expected
    # Each of the five runs got going (had its partitions) before it was killed.
    assert log.read_text().count("hot path: assigned") == 5, log.read_text()
