"""The standalone cluster: a job submitted with spark-submit runs on the master and worker."""

import subprocess
import sys
from pathlib import Path

import pytest

from plantlake.services.spark_cluster import master_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOB = Path(__file__).parent / "jobs" / "cluster_job.py"


def test_spark_submit_to_the_standalone_master_completes(settings, scratch_lake, spark):
    out = scratch_lake.lake.table_path("test", "cluster_job")
    before = {a["id"] for a in master_state(settings).get("completedapps", [])}
    result = subprocess.run(
        [sys.executable, "-c", "from plantlake.app.cli import main; main()",
         "spark", "submit", str(JOB), out],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"master={settings.spark.cluster_url}" in result.stdout
    assert "rows=10000" in result.stdout
    finished = [a for a in master_state(settings).get("completedapps", []) if a["id"] not in before]
    assert [a["name"] for a in finished] == ["plantlake-cluster-test"]
    assert finished[0]["state"] == "FINISHED"
    # The table the cluster wrote is readable from this (local) session too.
    assert spark.read.format("delta").load(out).count() == 10_000
