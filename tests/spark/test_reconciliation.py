"""The reconciliation check: which sensors it compares, and which twin rows it finds wrong."""

import pytest

from plantlake.pipelines.jobs.reconciliation import reconcile, reconciliation_metric
from tests.spark.test_gold import T0, reading, silver

pytestmark = pytest.mark.spark

TWIN = (
    "asset string, sensor string, event_time_ms long, value double, kafka_topic string, "
    "kafka_partition int, kafka_offset long"
)


def test_reconcile_counts_agreeing_wrong_and_not_yet_comparable_sensors(spark):
    rows = [
        reading(a, "temp", T0 + 1000, 10.0) for a in ("same", "other", "behind", "ahead", "none")
    ]
    kept = silver(spark, rows)
    lineage = {r[0]: (r[17], r[18], r[19]) for r in rows}  # topic, partition, offset

    def twin_row(asset, t, value, offset=None):
        topic, partition, own = lineage[asset]
        return (asset, "temp", t, value, topic, partition, own if offset is None else offset)

    twin = spark.createDataFrame([
        twin_row("same", T0 + 1000, 10.0),
        twin_row("other", T0 + 1000, 11.0),  # another value for the same reading
        twin_row("behind", T0, 9.0),  # the hot path never took the newer kept reading
        twin_row("ahead", T0 + 5000, 12.0),  # the hot path has moved on: not comparable yet
    ], TWIN)  # fmt: skip
    verdicts = {r.asset: (r.compared, r.agrees) for r in reconcile(kept, twin).collect()}
    assert verdicts == {
        "same": (True, True),
        "other": (True, False),
        "behind": (True, False),
        "ahead": (False, False),
        "none": (True, False),  # silver kept it, the twin has no row
    }
    assert reconciliation_metric(reconcile(kept, twin), batch_id=7) == (
        7, "twin_reconciliation", "warn", 4, 1, 3,
    )  # fmt: skip
    assert reconciliation_metric(reconcile(kept, None), batch_id=7)[3:] == (5, 0, 5)
