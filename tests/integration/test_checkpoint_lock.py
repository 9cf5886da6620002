"""Issue 13.8: a second `pipeline run bronze` on a checkpoint in use is refused, naming the first
job's pid, before it starts a Spark session; it must not plan its own ranges for the same batch
ids (which Delta would skip as already written: silent loss)."""

import pytest

from plantlake.adapters.kafka import produce
from plantlake.core.topics import topic
from tests.integration.test_restart import crash, demo_readings, finish, start_job, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def test_a_second_bronze_on_the_same_checkpoint_is_refused(isolated_kafka, tmp_path):
    settings = isolated_kafka
    produce(settings.kafka, topic("telemetry").name(settings.kafka.topic_prefix),
            demo_readings("lock", count=100, start_ms=1_767_225_600_000))  # fmt: skip
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_job("bronze", settings, first_log, once=False)
    try:

        def first_started() -> bool:
            return "bronze: bronze started" in first_log.read_text()

        wait_until(first_started, first, first_log, timeout=180)
        second = start_job("bronze", settings, second_log, once=True)
        assert second.wait(timeout=180) == 1
        refusal = second_log.read_text()
        assert "[checkpoint-busy]" in refusal
        assert f"pid {first.pid} " in refusal
        assert settings.lake.checkpoint_path("bronze") in refusal
        assert "log4j" not in refusal, "refused only after a Spark session had started"
    finally:
        crash(first)
    # Killed, the first leaves no stale lock: the next run takes over.
    finish(start_job("bronze", settings, second_log, once=True), second_log, timeout=300)
