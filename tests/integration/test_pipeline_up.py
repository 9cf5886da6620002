"""`plantlake pipeline up`, as an operator runs it: every reading reaches the twin, silver and the
aggregates, the status line shows each path, and Ctrl-C stops everything cleanly (issue 14)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plantlake.core.contracts import (
    GOLD_TELEMETRY_1M,
    GOLD_TWIN_STATE,
    SILVER_QUARANTINE,
    SILVER_TELEMETRY,
)
from plantlake.core.registry_entries import entry_rows
from plantlake.core.topics import topic
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs.twin_store import open_table
from plantlake.services.minio import delta_rs_options
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import plant_registry_entries
from tests.integration.test_kill_hot_path import CANONICAL, produce
from tests.integration.test_restart import crash, every_offset, lineage, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def _processes_with(variable: str) -> dict[int, bytes]:
    """Live processes whose environment holds `variable` (NAME=value): pid -> command line."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if variable.encode() in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = (proc / "cmdline").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
    return found


def _has_rows(settings, ref) -> bool:
    table = open_table(ref.path(settings.lake), delta_rs_options(settings))
    return table is not None and table.to_pyarrow_table(columns=["asset"]).num_rows > 0


def test_pipeline_up_lands_every_reading_and_stops_cleanly_on_ctrl_c(hot_lake, tmp_path):
    settings = hot_lake
    name = topic("telemetry").name(settings.kafka.topic_prefix)
    sensors = [(r["asset"], r["sensor"], r["quantity"])
               for r in entry_rows(plant_registry_entries(build_plant(settings.simulator.seed), default_window_features()))
               if r["quantity"] in CANONICAL and r["valid_to"] is None]  # fmt: skip
    produce(settings.kafka.bootstrap_servers, name, sensors, 10.0, 200)
    expected = every_offset(settings, [name])

    group = f"PLANTLAKE_HOT_PATH__GROUP_ID={settings.hot_path.group_id}"
    env = os.environ | {
        "PLANTLAKE_LAKE__ROOT": settings.lake.root,
        "PLANTLAKE_LAKE__CHECKPOINT_ROOT": settings.lake.checkpoint_root,
        "PLANTLAKE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "PLANTLAKE_HOT_PATH__GROUP_ID": settings.hot_path.group_id,
        "PLANTLAKE_PIPELINE__BRONZE_TRIGGER": "2 seconds",
        "PLANTLAKE_PIPELINE__COLD_TRIGGER": "5 seconds",
        "COLUMNS": "160",
    }
    log = tmp_path / "up.log"
    command = [sys.executable, "-c", "from plantlake.app.cli import main; main()", "pipeline", "up"]
    with log.open("a") as out:
        job = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    try:

        def every_reading_landed() -> bool:
            twin = open_table(GOLD_TWIN_STATE.path(settings.lake), delta_rs_options(settings))
            if twin is None or twin.to_pyarrow_table(columns=["asset"]).num_rows < len(sensors):
                return False
            if not (
                _has_rows(settings, GOLD_TELEMETRY_1M) and _has_rows(settings, SILVER_QUARANTINE)
            ):
                return False
            routed = [key for ref in (SILVER_TELEMETRY, SILVER_QUARANTINE)
                      for key in lineage(settings, ref.path(settings.lake))]  # fmt: skip
            return len(routed) == len(expected)

        wait_until(every_reading_landed, job, log, timeout=420)
        routed = [key for ref in (SILVER_TELEMETRY, SILVER_QUARANTINE)
                  for key in lineage(settings, ref.path(settings.lake))]  # fmt: skip
        assert set(routed) == expected and len(routed) == len(set(routed))
        os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        assert job.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if job.poll() is None:
            crash(job)
    output = log.read_text()
    for row in ("hot", "bronze", "cold", "features"):
        assert f"│ {row}" in output, output[-3000:]
    assert "stopping: queries between batches" in output
    hot = [pid for pid, command in _processes_with(group).items() if b"run\0hot" in command]
    assert hot == [], "the hot path outlived pipeline up"
    # The hot path has stopped (pipeline up waits for it); Spark's JVM and workers follow their
    # driver within seconds. Nothing may be left behind.
    deadline = time.monotonic() + 30
    while _processes_with(group) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_with(group) == {}, "a process of pipeline up outlived it"
