"""A `fail` expectation stops the silver job with a message naming the rule; the batch lands nowhere.

The job reads its rules from a rule file of the test's own (`load_rules(directory)` passed to
`silver.run(rules=...)`); its input is bronze.telemetry rows written directly. The lake is on
file:// under the test's temp dir: what is under test is the job's behaviour, not S3, and the
shared machine is short of cores.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from pyspark.errors import StreamingQueryException

from plantlake.adapters.restarts import failed_for_good
from plantlake.core.config import LakeSettings
from plantlake.core.contracts import (
    BRONZE_TELEMETRY,
    SILVER_DQ_METRICS,
    SILVER_QUARANTINE,
    SILVER_TELEMETRY,
)
from plantlake.ingest.filters import default_window_features
from plantlake.pipelines.jobs import silver
from plantlake.pipelines.jobs.reference import load_reference
from plantlake.pipelines.transforms.expectations import load_rules
from plantlake.simulator.plant import build_plant
from plantlake.simulator.registry import plant_registry_entries
from tests.spark.test_silver import BRONZE_SCHEMA, _ts

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

PLANT = build_plant(7)
T0 = PLANT.start_ms + 3 * 86_400_000
PUMP = "plant1/line1/pump-02"
RULE = "discharge_pressure_hard_limit"
RULES = f"""
rules:
  - name: {RULE}
    kind: range
    action: ACTION
    description: Above 50 bar the relief valve has failed; nothing downstream may use such a value.
    quantity: pressure
    unit: bar
    max: 50
  - name: quality_good
    kind: quality
    action: warn
    description: The protocol marked the reading's quality other than Good.
"""


def bronze_row(sensor: str, value: float, unit: str, *, offset: int) -> tuple:
    t = T0 + offset * 1000
    return (
        1, PUMP, sensor, value, unit, "Good", t, t + 40, "opcua", "test", None, "f1",
        _ts(t), _ts(t + 40), PUMP, "plantlake.telemetry", 0, offset, _ts(t + 50), "edge-a",
        offset, b"{}", _ts(t + 60),
    )  # fmt: skip


def rules_in(directory: Path, action: str):
    directory.mkdir()
    (directory / "rules.yaml").write_text(RULES.replace("ACTION", action))
    return load_rules(directory)


def test_a_failing_fail_rule_stops_silver_naming_the_rule_and_writes_nothing(
    spark, settings, tmp_path
):
    lake = LakeSettings(root=f"file://{tmp_path}/lake", checkpoint_root=f"file://{tmp_path}/chk")
    own = settings.model_copy(update={"lake": lake})
    load_reference(spark, own, plant_registry_entries(PLANT, default_window_features()))
    # 20 plausible readings and 3 at 80-95 bar in one micro-batch.
    rows = [bronze_row("discharge_pressure", 6.0 + i / 10, "bar", offset=i) for i in range(12)]
    rows += [bronze_row("bearing_temperature", 55.0 + i, "degC", offset=12 + i) for i in range(8)]
    rows += [bronze_row("discharge_pressure", 80.0 + 5 * i, "bar", offset=20 + i) for i in range(3)]
    spark.createDataFrame(rows, BRONZE_SCHEMA).write.format("delta").save(
        BRONZE_TELEMETRY.path(lake)
    )

    query = silver.run(spark, own, once=True, rules=rules_in(tmp_path / "fail", "fail"))
    with pytest.raises(StreamingQueryException) as stopped:
        query.awaitTermination()
    assert not query.isActive
    message = str(stopped.value)
    assert failed_for_good(stopped.value)  # a continuous run does not restart it
    assert f"expectation '{RULE}' (action fail) failed for 3 row(s) in batch 0" in message
    # An example row and its reason (which of the three is Spark's choice).
    assert f"e.g. {PUMP} discharge_pressure at event_time_ms" in message
    assert "bar above the plausible maximum 50 bar for a pump" in message

    # Nothing of the batch landed: silver.telemetry exists (the job creates it) but is empty,
    # the quarantine and the metrics were never written, and the batch is not committed.
    assert spark.read.format("delta").load(SILVER_TELEMETRY.path(lake)).count() == 0
    for ref in (SILVER_QUARANTINE, SILVER_DQ_METRICS):
        assert not Path(urlparse(ref.path(lake)).path).exists(), f"{ref.name} was written"
    checkpoint = Path(urlparse(lake.checkpoint_path("silver")).path)
    assert (checkpoint / "offsets" / "0").exists() and not (checkpoint / "commits" / "0").exists()

    # As the message advises: with the rule's action changed to quarantine, the restarted job
    # retries the same batch, and every reading lands where the rules send it.
    query = silver.run(spark, own, once=True, rules=rules_in(tmp_path / "quarantine", "quarantine"))
    query.awaitTermination()
    assert query.exception() is None
    landed = spark.read.format("delta").load(SILVER_TELEMETRY.path(lake))
    assert sorted(r.kafka_offset for r in landed.collect()) == list(range(20))
    held = spark.read.format("delta").load(SILVER_QUARANTINE.path(lake)).collect()
    assert sorted(r.kafka_offset for r in held) == [20, 21, 22]
    assert all([f.rule for f in r.failed_rules] == [RULE] for r in held)
    [metric] = (
        spark.read.format("delta").load(SILVER_DQ_METRICS.path(lake)).where(f"rule = '{RULE}'")
    ).collect()
    assert (metric.batch_id, metric.checked, metric.failed) == (0, 15, 3)


@pytest.mark.parametrize("once", [True, False], ids=["once", "continuous"])
def test_the_job_runner_raises_the_failed_rule_as_itself(spark, settings, tmp_path, monkeypatch,
                                                         once):  # fmt: skip
    """Issue 9: what `plantlake pipeline run silver` and the spark-submit entry get is the
    ExpectationFailed the batch raised, code and hint included, not Spark's wrapper; and a
    continuous run does not restart it."""
    import io

    from rich.console import Console

    from plantlake.app.jobs import run_layer
    from plantlake.core.errors import ExpectationFailed

    lake = LakeSettings(root=f"file://{tmp_path}/lake", checkpoint_root=f"file://{tmp_path}/chk")
    own = settings.model_copy(update={"lake": lake})
    load_reference(spark, own, plant_registry_entries(PLANT, default_window_features()))
    rows = [bronze_row("discharge_pressure", 6.0, "bar", offset=0),
            bronze_row("discharge_pressure", 90.0, "bar", offset=1)]  # fmt: skip
    spark.createDataFrame(rows, BRONZE_SCHEMA).write.format("delta").save(
        BRONZE_TELEMETRY.path(lake)
    )
    failing = rules_in(tmp_path / "fail", "fail")
    monkeypatch.setattr(silver, "load_rules", lambda *_: failing)
    output = io.StringIO()
    with pytest.raises(ExpectationFailed) as stopped:
        run_layer(own, "silver", once=once, console=Console(file=output), spark=spark)
    assert stopped.value.code == "expectation-failed"
    assert (stopped.value.rule, stopped.value.failed) == (RULE, 1)
    assert stopped.value.hint
    assert "restart" not in output.getvalue()
