"""The Prometheus scrape config and alert rules shipped in infra/prometheus (files only, no server)."""

import inspect
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from plantlake.core.config import WorkbenchSettings

FOLDER = Path(__file__).resolve().parents[2] / "infra" / "prometheus"
# The workbench's metric names (the workbench design; written by plantlake.workbench.metrics).
METRICS = {
    "plantlake_edge_buffer_records", "plantlake_edge_buffer_oldest_age_seconds",
    "plantlake_job_batch_duration_seconds", "plantlake_job_rows_per_second",
    "plantlake_job_backlog", "plantlake_job_last_progress_age_seconds",
    "plantlake_quarantine_failed_ratio", "plantlake_quarantine_open",
    "plantlake_twin_sensors", "plantlake_twin_dead_sensor",
}  # fmt: skip
PROMETHEUS_OWN = {"up"}  # the series Prometheus writes per target
SEVERITIES = {"critical", "warning", "info"}
# A PromQL identifier not followed by "(" (a function) and not inside {...} or [...].
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "bool", "offset"}  # fmt: skip


def _rules() -> list[dict]:
    groups = yaml.safe_load((FOLDER / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def series_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels, durations and
    string literals left out)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    names = set()
    for match in _NAME.finditer(text):
        word, rest = match.group(), text[match.end() :].lstrip()
        if rest.startswith("(") or word in _KEYWORDS:
            continue
        names.add(word)
    return names


def test_series_names_skip_functions_labels_and_ranges():
    expr = 'deriv(plantlake_job_backlog{job="silver"}[10m]) > 0 and up{job="x"} == 0'
    assert series_names(expr) == {"plantlake_job_backlog", "up"}


def test_prometheus_scrapes_the_workbench_every_15_s_and_loads_the_rules():
    config = yaml.safe_load((FOLDER / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    defaults = WorkbenchSettings()
    assert job["static_configs"][0]["targets"] == [f"{defaults.host}:{defaults.port}"]
    assert job["metrics_path"] == "/metrics"
    # The rules read the pipeline job from the series' own `job` label (not exported_job).
    assert job["honor_labels"] is True
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "15s"


def test_every_rule_uses_only_metrics_the_workbench_exports():
    for rule in _rules():
        used = series_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= METRICS | PROMETHEUS_OWN, (rule["alert"], used - METRICS)


def test_the_workbench_exports_every_metric_the_rules_use():
    from plantlake.workbench import metrics

    exported = set(re.findall(r'"(plantlake_[a-z_]+)"', inspect.getsource(metrics)))
    used = {name for rule in _rules() for name in series_names(rule["expr"])}
    assert used - PROMETHEUS_OWN <= exported, used - exported


def test_every_rule_has_a_severity_a_summary_and_a_description():
    for rule in _rules():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]


def test_the_issue_s_alerts_are_there():
    used = {name for rule in _rules() for name in series_names(rule["expr"])}
    # Edge backlog growing, sensor dead, job lagging (and quarantine rate high).
    assert {
        "plantlake_edge_buffer_records", "plantlake_edge_buffer_oldest_age_seconds",
        "plantlake_twin_dead_sensor", "plantlake_job_last_progress_age_seconds",
        "plantlake_job_backlog", "plantlake_quarantine_failed_ratio",
    } <= used  # fmt: skip
    assert len({rule["alert"] for rule in _rules()}) == len(_rules())


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian: prometheus) missing"
)
def test_promtool_accepts_the_files_and_the_alerts_fire_when_they_should():
    # alerts_test.yml feeds synthetic series: a growing edge buffer, a dead sensor, a silent and
    # a lagging job, a noisy rule, a failed scrape; and healthy ones that must not alert.
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                 ["test", "rules", "alerts_test.yml"]):  # fmt: skip
        result = subprocess.run(["promtool", *args], cwd=FOLDER, capture_output=True, text=True,
                                timeout=60)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
