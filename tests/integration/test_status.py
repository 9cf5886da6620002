"""`plantlake status`: every service healthy after `plantlake up`, a stopped one reported down."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _plantlake(*args):
    return subprocess.run(
        [sys.executable, "-c", "from plantlake.app.cli import main; main()", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_status_json_reports_every_service_up(settings):
    result = _plantlake("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    assert [s["name"] for s in report["services"]] == [
        "minio",
        "kafka",
        "mosquitto",
        "mlflow",
        "workbench",
        "spark-master",
        "spark-worker",
    ]
    assert all(s["status"] == "up" and s["pid"] for s in report["services"])


def test_a_stopped_service_is_reported_down_and_up_restores_it(settings):
    assert _plantlake("down", "mosquitto").returncode == 0
    try:
        result = _plantlake("status", "--json")
        assert result.returncode == 1
        by_name = {s["name"]: s for s in json.loads(result.stdout)["services"]}
        assert by_name["mosquitto"]["status"] == "down"
        assert by_name["kafka"]["status"] == "up"
    finally:
        restored = _plantlake("up", "mosquitto")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert json.loads(_plantlake("status", "--json", "mosquitto").stdout)["healthy"] is True
