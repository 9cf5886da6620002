"""The predictive-maintenance half of the demo: a month of plant history through the lake to
registered models, a promotion decision and work orders.

It runs in a lake and on topics of its own (`s3a://plantlake/demo-ml/<run>`, `demo-ml-<run>.*`),
so a month of historian data never mixes with the live plant's minutes in the main lake, and a
second demo run starts clean. The models are registered under the configured names in the shared
MLflow server, so each demo run brings a challenger that must beat the previous run's champion.
"""

from __future__ import annotations

import time
import uuid

from rich.console import Console
from rich.table import Table

from plantlake.app.edge_sources import edge_window_features
from plantlake.core.config import LakeSettings, Settings

HISTORY_DAYS = 30
HISTORY_STEP_MS = 10 * 60_000


def _isolated(settings: Settings, run_id: str) -> Settings:
    root = f"s3a://plantlake/demo-ml/{run_id}"
    return settings.model_copy(
        update={
            "lake": LakeSettings(root=root, checkpoint_root=f"{root}/_checkpoints"),
            "kafka": settings.kafka.model_copy(update={"topic_prefix": f"demo-ml-{run_id}"}),
            "home": settings.home / "demo-ml" / run_id,
        }
    )


def _step(console: Console, what: str, began: float) -> float:
    now = time.monotonic()
    console.print(f"  {what} ({now - began:.0f}s)")
    return now


def run_ml_demo(spark, settings: Settings, console: Console) -> str:
    """History → bronze → silver → CMMS → features → train → promote → score → work orders.

    Returns the root of the lake of its own that it wrote (its work orders are there)."""
    from pyspark.sql import functions as F

    from plantlake.adapters.batch_errors import await_query
    from plantlake.adapters.delta import read_delta, table_exists
    from plantlake.core.contracts import GOLD_FEATURES, GOLD_WORK_ORDERS, SILVER_MAINTENANCE_EVENTS
    from plantlake.models.jobs.evaluation_report import method_table
    from plantlake.models.jobs.promotion import promote
    from plantlake.models.jobs.scoring import run_batch_scoring
    from plantlake.models.jobs.train import train_models
    from plantlake.pipelines.jobs import bronze, gold_features, silver
    from plantlake.pipelines.jobs.cmms import load_cmms_export
    from plantlake.pipelines.jobs.reference import load_reference
    from plantlake.services.kafka import delete_prefixed_topics, ensure_topics
    from plantlake.simulator.historian import backfill
    from plantlake.simulator.plant import build_plant
    from plantlake.simulator.registry import plant_registry_entries

    run_id = uuid.uuid4().hex[:8]
    ml = _isolated(settings, run_id)
    console.rule("predictive maintenance: a month of history to work orders")
    console.print(f"lake {ml.lake.root}, topics {ml.kafka.topic_prefix}.*")
    ensure_topics(ml, lambda _: None)
    try:
        t = time.monotonic()
        history = backfill(ml, days=HISTORY_DAYS, step_ms=HISTORY_STEP_MS, console=console)
        t = _step(console, "historian backfill", t)
        load_reference(
            spark,
            ml,
            plant_registry_entries(build_plant(ml.simulator.seed), edge_window_features(ml)),
        )
        await_query(bronze.run(spark, ml, once=True))
        t = _step(console, "bronze", t)
        await_query(silver.run(spark, ml, once=True))
        t = _step(console, "silver", t)
        loaded = load_cmms_export(spark, ml.lake, history.cmms_path)
        console.print(f"  {SILVER_MAINTENANCE_EVENTS.name}: {loaded.total} CMMS events")
        await_query(gold_features.run(spark, ml, once=True))
        rows = read_delta(spark, GOLD_FEATURES.path(ml.lake)).count()
        t = _step(console, f"{GOLD_FEATURES.name}: {rows} rows", t)
        report = train_models(spark, ml, console=console)
        t = _step(console, "training", t)
        decisions = [promote(spark, ml, m.name, console=console) for m in report.models]
        t = _step(console, "promotion", t)
        run_batch_scoring(spark, ml, console=console)
        _step(console, "batch scoring", t)
    finally:
        delete_prefixed_topics(ml)

    console.print(method_table(report.comparison, title=(
        f"the holdout (simulated ground truth): every method at the same "
        f"{ml.models.alert_budget:.0%} alert budget, with 95% intervals over its failures")))  # fmt: skip
    console.print("  across several plants and budgets: `plantlake models evaluate`")
    orders_path = GOLD_WORK_ORDERS.path(ml.lake)
    if table_exists(spark, orders_path):
        orders = read_delta(spark, orders_path)
        counts = orders.groupBy("status").count().collect()
        console.print(
            f"{GOLD_WORK_ORDERS.name}: " + ", ".join(f"{r['count']} {r.status}" for r in counts)
        )
        table = Table(title="latest work orders, with the evidence that fired them")
        for name in ("asset", "failure mode", "opened", "status", "model", "score"):
            table.add_column(name)
        for r in orders.orderBy(F.desc("opened_at")).limit(8).collect():
            table.add_row(r.asset, r.failure_mode, str(r.opened_at), r.status,
                          f"{r.model_name} v{r.model_version}", f"{r.opened_score:.3f}")  # fmt: skip
        console.print(table)
    champions = sum(d.promoted for d in decisions)
    console.print(f"[green]{champions} of {len(decisions)} challengers promoted to champion.[/]")
    return ml.lake.root
