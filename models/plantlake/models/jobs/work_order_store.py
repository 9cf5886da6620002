"""gold.work_orders in the lake: the orders an alert batch needs, the maintenance that closes
them, and the planned orders written back (MERGE on work_order_id).

gold.work_orders keeps event times in epoch ms and as timestamps: `opened_at` is the feature time
that opened the order, `closed_at` the time of the repair or inspection that closed it;
`created_at`, `updated_at` and `alerted_at` are wall-clock times of the scoring job.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from plantlake.adapters.delta import read_delta, table_exists, upsert
from plantlake.core.clock import now_ms
from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import GOLD_WORK_ORDERS, SILVER_MAINTENANCE_EVENTS
from plantlake.models.logic.work_orders import (
    OPEN,
    WORK_ORDER_COLUMNS,
    WORK_ORDER_SCHEMA,
    Alert,
    Plan,
    RepairOrInspection,
    WorkOrder,
    plan_work_orders,
)
from plantlake.pipelines.transforms.features import MAINTENANCE_KINDS

# Wall-clock columns of gold.work_orders: epoch ms in the pure logic, timestamps in the table.
_WALL_CLOCK = ("created_at", "updated_at", "alerted_at")


def read_orders(spark: SparkSession, path: str, *, assets: Sequence[str]) -> list[WorkOrder]:
    """Every open work order, and the closed ones of `assets`."""
    if not table_exists(spark, path):
        return []
    wanted = F.col("status") == OPEN
    if assets:
        wanted = wanted | F.col("asset").isin(list(assets))
    columns = [
        F.unix_millis(c.removesuffix("_ms")).alias(c) if c.removesuffix("_ms") in _WALL_CLOCK else c
        for c in WORK_ORDER_COLUMNS
    ]
    rows = read_delta(spark, path).where(wanted).select(*columns).collect()
    return [WorkOrder.from_row(row.asDict()) for row in rows]


def read_maintenance(spark: SparkSession, lake: LakeSettings, *, assets: Sequence[str]):
    """Repairs and inspections of `assets` from silver.maintenance_events (none if no table)."""
    path = SILVER_MAINTENANCE_EVENTS.path(lake)
    if not assets or not table_exists(spark, path):
        return []
    rows = (
        read_delta(spark, path)
        .where(F.col("asset").isin(list(assets)) & F.col("event").isin(list(MAINTENANCE_KINDS)))
        .select("asset", "event", "event_time_ms")
        .collect()
    )
    return [RepairOrInspection(r.asset, r.event, int(r.event_time_ms)) for r in rows]


def write_orders(spark: SparkSession, orders: Sequence[WorkOrder], path: str) -> None:
    """MERGE work orders on work_order_id (their content is decided by the plan, so a repeat of
    the same plan writes the same rows)."""
    rows = spark.createDataFrame([o.as_row() for o in orders], WORK_ORDER_SCHEMA)
    table = rows.select(
        "work_order_id", "asset", "asset_class", "failure_mode", "status",
        F.timestamp_millis("opened_feature_time_ms").alias("opened_at"),
        "opened_feature_time_ms", "opened_score",
        F.timestamp_millis("latest_feature_time_ms").alias("latest_feature_time"),
        "latest_feature_time_ms", "latest_score", "alert_count",
        "model_name", "model_version", "model_kind", "threshold", "horizon_hours", "evidence",
        F.timestamp_millis("closed_event_time_ms").alias("closed_at"),
        "closed_event", "closed_event_time_ms", "closed_reason",
        *(F.timestamp_millis(f"{c}_ms").alias(c) for c in _WALL_CLOCK),
    )  # fmt: skip
    upsert(table, path, on=GOLD_WORK_ORDERS.merge_on(), app_id=None)


def act_on_alerts(spark: SparkSession, settings: Settings, alerts: Sequence[Alert]) -> Plan:
    """Plan the work orders from alerts, open orders and the maintenance log; write; announce."""
    path = GOLD_WORK_ORDERS.path(settings.lake)
    alerting = sorted({a.asset for a in alerts})
    orders = read_orders(spark, path, assets=alerting)
    assets = sorted({*alerting, *(o.asset for o in orders if o.status == OPEN)})
    maintenance = read_maintenance(spark, settings.lake, assets=assets)
    plan = plan_work_orders(alerts, orders, maintenance, now_ms=now_ms())
    if plan.orders:
        write_orders(spark, plan.orders, path)
    return plan
