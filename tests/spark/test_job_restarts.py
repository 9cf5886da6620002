"""Issue 13.7: a continuous `pipeline run` restarts a query that failed (a broker or MinIO
restart under it) with backoff, but not a `fail` rule, and gives up after `pipeline.restarts`
failures in a row. This module is itself the layer the tests run (see `run`)."""

import pytest
from rich.console import Console

from plantlake.app import jobs
from plantlake.core.errors import ExpectationFailed

pytestmark = pytest.mark.spark

# What the next runs of this layer's query do, consumed in order: "fail" (a transient error in
# the batch), "rule" (a failed `fail` rule), or "ok".
PLAN: list[str] = []
SOURCE_DIR = {"path": ""}


def run(spark, settings, *, once):
    outcome = PLAN.pop(0)

    def batch(rows, batch_id):
        if outcome == "fail":
            raise ConnectionError("Connection refused: 127.0.0.1:9000 (MinIO restarting)")
        if outcome == "rule":
            raise ExpectationFailed("expectation 'x' (action fail) failed", rule="x", failed=1,
                                    example="e.g.", hint="fix it")  # fmt: skip
        rows.count()

    source = spark.readStream.format("text").load(SOURCE_DIR["path"])
    # availableNow even in continuous mode, so a query that succeeds ends and the run returns.
    return (
        source.writeStream.queryName("flaky").foreachBatch(batch).trigger(availableNow=True)
        .start()
    )  # fmt: skip


@pytest.fixture
def layer(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("one line\n")
    SOURCE_DIR["path"] = str(tmp_path / "in")
    monkeypatch.setitem(jobs.LAYERS, "flaky", __name__)
    monkeypatch.setattr(jobs.time, "sleep", lambda s: None)  # the backoff, not the test, waits
    PLAN.clear()
    yield
    PLAN.clear()


def _run(spark, settings, restarts=5):
    settings = settings.model_copy(update={
        "pipeline": settings.pipeline.model_copy(update={"restarts": restarts})})  # fmt: skip
    console = Console(record=True, width=200)
    jobs.run_layer(settings, "flaky", once=False, console=console, spark=spark)
    return console.export_text()


def test_a_failed_query_is_restarted_with_backoff(spark, lake_settings, layer):
    PLAN.extend(["fail", "fail", "ok"])
    said = _run(spark, lake_settings)
    assert not PLAN  # three runs
    assert "restart 1 of 5 in 2s" in said and "restart 2 of 5 in 4s" in said
    assert "Connection refused" in said


def test_a_failed_rule_is_not_retried(spark, lake_settings, layer):
    PLAN.extend(["rule", "ok"])
    with pytest.raises(Exception, match="ExpectationFailed"):
        _run(spark, lake_settings)
    assert PLAN == ["ok"]


def test_the_run_gives_up_after_its_restarts(spark, lake_settings, layer):
    PLAN.extend(["fail"] * 3 + ["ok"])
    with pytest.raises(Exception, match="Connection refused"):
        _run(spark, lake_settings, restarts=2)
    assert PLAN == ["ok"]
