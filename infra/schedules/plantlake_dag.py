"""Airflow DAGs for plantlake: the medallion jobs every five minutes, maintenance nightly.

Copy this file into your Airflow `dags/` folder. It assumes plantlake is installed on the
workers (`PLANTLAKE_BIN` points at its `plantlake` command) with the same settings (environment
or `PLANTLAKE_CONFIG`) as the rest of the plant. Each task is one `spark-submit` through
`plantlake pipeline submit`, so the jars and the cluster come from plantlake's settings.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

PLANTLAKE = os.environ.get("PLANTLAKE_BIN", "plantlake")
DEFAULTS = {"retries": 2, "retry_delay": timedelta(minutes=1)}

with DAG(
    dag_id="plantlake_medallion",
    description="bronze -> silver -> gold, each once (availableNow)",
    schedule=timedelta(minutes=5),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one writer per table: never two runs at once
    default_args=DEFAULTS,
    tags=["plantlake"],
) as medallion:
    layers = [
        BashOperator(task_id=layer, bash_command=f"{PLANTLAKE} pipeline submit {layer} --once")
        for layer in ("bronze", "silver", "gold")
    ]
    layers[0] >> layers[1] >> layers[2]
    # gold.twin_state: the hot path catches up with Kafka and stops (no Spark, no dependency).
    BashOperator(task_id="hot", bash_command=f"{PLANTLAKE} pipeline run hot --once")

with DAG(
    dag_id="plantlake_maintenance",
    description="OPTIMIZE (clustered by asset) and VACUUM every lake table",
    schedule="30 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["plantlake"],
) as maintenance:
    BashOperator(task_id="maintain", bash_command=f"{PLANTLAKE} pipeline submit maintain")
