"""Reconciliation of the hot path with the cold path: does the twin hold what silver kept? (gold)

The hot path evaluates the rules in Python, silver in Spark; a property test holds the two
evaluators to the same verdicts, and this check holds the running system to it. For each
sensor of a cold-path batch, silver's newest kept Good row (by STATE_ORDER) is compared with
the sensor's gold.twin_state row:
- twin newer than the batch: the hot path has moved on; nothing to compare yet (not counted);
- the same reading (event time, Kafka lineage and value): passed;
- anything else (older twin, another value, no twin row): failed.
One silver.dq_metrics row per batch, rule `twin_reconciliation`, action warn.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from plantlake.adapters.spark import first_row
from plantlake.pipelines.transforms.twin_state import latest_state

RULE = "twin_reconciliation"


def reconcile(kept: DataFrame, twin: DataFrame | None) -> DataFrame:
    """Per sensor of `kept`: `compared` and `agrees` (booleans).

    Grain in: `kept`, one silver.telemetry row of a batch; `twin`, one gold.twin_state row per
    sensor (None when the table does not exist yet). Grain out: one row per (asset, sensor).
    """
    newest = latest_state(kept).select(
        "asset", "sensor",
        F.col("event_time_ms").alias("s_time"), F.col("value").alias("s_value"),
        F.col("kafka_topic").alias("s_topic"), F.col("kafka_partition").alias("s_partition"),
        F.col("kafka_offset").alias("s_offset"),
    )  # fmt: skip
    if twin is None:
        return newest.select("asset", "sensor", F.lit(True).alias("compared"),
                             F.lit(False).alias("agrees"))  # fmt: skip
    t = twin.select(
        "asset", "sensor",
        F.col("event_time_ms").alias("t_time"), F.col("value").alias("t_value"),
        F.col("kafka_topic").alias("t_topic"), F.col("kafka_partition").alias("t_partition"),
        F.col("kafka_offset").alias("t_offset"),
    )  # fmt: skip
    same = (
        (F.col("t_time") == F.col("s_time"))
        & (F.col("t_value") == F.col("s_value"))
        & (F.col("t_topic") == F.col("s_topic"))
        & (F.col("t_partition") == F.col("s_partition"))
        & (F.col("t_offset") == F.col("s_offset"))
    )
    return newest.join(t, ["asset", "sensor"], "left").select(
        "asset",
        "sensor",
        F.coalesce(F.col("t_time") <= F.col("s_time"), F.lit(True)).alias("compared"),
        F.coalesce(same, F.lit(False)).alias("agrees"),
    )


def reconciliation_metric(verdicts: DataFrame, *, batch_id: int) -> tuple:
    """The silver.dq_metrics row (batch_id, rule, action, checked, passed, failed)."""
    counts = first_row(
        verdicts.agg(
            F.count_if("compared").alias("checked"),
            F.count_if(F.col("compared") & F.col("agrees")).alias("passed"),
        )
    )
    checked, passed = counts["checked"] or 0, counts["passed"] or 0
    return (batch_id, RULE, "warn", checked, passed, checked - passed)
