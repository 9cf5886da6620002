"""The shipped schedules run jobs that exist, through the same command the docs describe."""

import ast
import re
from pathlib import Path

from plantlake.app.jobs import JOBS

SCHEDULES = Path(__file__).resolve().parents[2] / "infra" / "schedules"


def _submitted(text: str) -> list[str]:
    return re.findall(r"pipeline submit (\w+)", text)


def test_crontab_lines_submit_known_jobs_in_layer_order():
    text = (SCHEDULES / "crontab").read_text()
    jobs = _submitted(text)
    assert jobs == ["bronze", "silver", "gold", "maintain"]
    assert set(jobs) <= set(JOBS)
    assert re.findall(r"pipeline run (\w+) --once", text) == ["hot"]
    for line in text.splitlines():
        if line and not line.startswith("#") and "=" not in line.split()[0]:
            assert len(line.split()) > 5 and "flock" in line  # five time fields, no overlap


def test_airflow_dag_is_valid_python_and_submits_known_jobs():
    source = (SCHEDULES / "plantlake_dag.py").read_text()
    ast.parse(source)  # Airflow itself is not a dependency of plantlake
    assert set(
        re.findall(r"for layer in \(([^)]*)\)", source)[0]
        .replace('"', "")
        .replace(" ", "")
        .split(",")
    ) == {"bronze", "silver", "gold"}
    assert "pipeline submit maintain" in source
    assert "max_active_runs=1" in source
