"""The training job reads the planners' verdicts that the workbench wrote through delta-rs
(gold.work_order_feedback) in Spark, at a recorded version and up to the cutoff, and the label
rule then counts a `done` verdict as a failure (issue 10: feedback as a label source)."""

from __future__ import annotations

from deltalake import DeltaTable

from plantlake.core.clock import now_ms
from plantlake.core.contracts import (
    DONE,
    FALSE_ALARM,
    GOLD_FEATURES,
    GOLD_WORK_ORDER_FEEDBACK,
    SILVER_MAINTENANCE_EVENTS,
)
from plantlake.models.jobs.train import read_inputs
from plantlake.models.logic.training_set import feedback_labels
from plantlake.workbench.review_store import Feedback, ReviewStore

PUMP = "plant1/line1/pump-02"
HOUR = 3_600_000


def test_verdicts_the_workbench_wrote_reach_training_up_to_the_cutoff(spark, own_lake):
    for ref in (GOLD_FEATURES, SILVER_MAINTENANCE_EVENTS):  # as the jobs create them, empty
        spark.createDataFrame([], ref.ddl()).write.format("delta").save(ref.path(own_lake.lake))
    store = ReviewStore(own_lake)
    for i, verdict in enumerate((DONE, FALSE_ALARM)):
        assert store.record_feedback(Feedback(
            feedback_id=f"fb-{i}", work_order_id=f"wo-{i}", asset=PUMP, failure_mode="failure",
            verdict=verdict, note="bearing replaced" if verdict == DONE else None,
            planner="planner",
        ))  # fmt: skip
    written = DeltaTable(GOLD_WORK_ORDER_FEEDBACK.path(own_lake.lake).removeprefix("file://"))

    inputs = read_inputs(spark, own_lake, cutoff_ms=None)
    assert sorted(inputs.feedback["verdict"]) == [DONE, FALSE_ALARM]
    assert inputs.versions[GOLD_WORK_ORDER_FEEDBACK.name] == written.version()
    labels = feedback_labels(inputs.feedback, inputs.events, horizon_ms=24 * HOUR,
                             observed_until_ms=now_ms())  # fmt: skip
    # No CMMS failure near the `done`: it becomes a failure of its own (with its repair).
    assert (labels.events["event"] == "failure").sum() == 1 and labels.done_in_cmms == 0

    before = read_inputs(spark, own_lake, cutoff_ms=now_ms() - HOUR)
    assert before.feedback.empty  # verdicts after the cutoff are not known to it
