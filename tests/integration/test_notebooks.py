"""The notebooks run top to bottom in a Jupyter kernel of their own against a real lake and MLflow.

The kernel is a separate process with its own Spark JVM; it gets the test's settings the way a
user's notebook does, from `PLANTLAKE_*` environment variables it inherits. The kernel spec
`python3` the notebooks declare is written to a temporary JUPYTER_PATH pointing at this
interpreter, so the kernel imports the same plantlake and never a system Python's.
"""

import re
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CELL_TIMEOUT_S = 600


def _kernel_env(monkeypatch, tmp_path: Path, settings) -> None:
    """Environment the kernel inherits: these settings, and a python3 spec for this interpreter."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    write_kernel_spec(tmp_path / "jupyter" / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    for name, value in {
        "PLANTLAKE_HOME": str(settings.home),
        "PLANTLAKE_LAKE__ROOT": settings.lake.root,
        "PLANTLAKE_LAKE__CHECKPOINT_ROOT": settings.lake.checkpoint_root,
        "PLANTLAKE_MLFLOW__TRACKING_URI": settings.mlflow.uri,
        "PLANTLAKE_MODELS__FAILURE_MODEL": settings.models.failure_model,
        "PLANTLAKE_MODELS__ANOMALY_MODEL": settings.models.anomaly_model,
    }.items():
        monkeypatch.setenv(name, value)


def _execute(name: str, *, keep: Path):
    """Run a notebook top to bottom; nbclient raises CellExecutionError on the first failing cell.

    The executed copy, outputs and all, is written to `keep` for reading after a failure.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells), f"{name} is saved with outputs"
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )  # fmt: skip
    try:
        client.execute()
    finally:
        nbformat.write(notebook, keep / name)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return notebook, outputs


def _text(outputs) -> str:
    """Everything the cells printed or displayed, as plain text."""
    parts = [o.text if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
             for o in outputs]  # fmt: skip
    return "\n".join(parts)


def test_explore_notebook_plots_features_and_skips_missing_tables(ml_lake, monkeypatch, tmp_path):
    _kernel_env(monkeypatch, tmp_path, ml_lake)

    notebook, outputs = _execute("01_explore_twin_state_quarantine_features.ipynb", keep=tmp_path)

    text = _text(outputs)
    # The ML lake has features and CMMS events, but no twin state and no quarantine.
    assert f"lake {ml_lake.lake.root}: " in text
    assert "gold.twin_state is not in this lake yet" in text
    assert "silver.quarantine is not in this lake yet" in text
    failures = re.search(r"plant1/line1/(pump-\d+): (\d+) failures", text)
    assert failures and int(failures.group(2)) > 0, text
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 1
    plot_cell = next(c for c in notebook.cells if c.cell_type == "code" and "axvline" in c.source)
    assert any("image/png" in o.get("data", {}) for o in plot_cell.outputs)


def test_train_notebook_registers_and_promotes_the_failure_model(ml_models, monkeypatch, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    _kernel_env(monkeypatch, tmp_path, ml_models)

    _, outputs = _execute("02_train_and_register.ipynb", keep=tmp_path)

    text = _text(outputs)
    assert "feature_time_ms <= label_time_ms everywhere" in text
    mlflow.set_tracking_uri(ml_models.mlflow.uri)
    client = MlflowClient()
    name = ml_models.models.failure_model
    champion = client.get_model_version_by_alias(name, "champion").version
    assert client.get_model_version_by_alias(name, "challenger").version == champion
    assert client.get_model_version(name, champion).tags["promotion.decision"] == "promoted"
    anomaly = client.get_model_version_by_alias(ml_models.models.anomaly_model, "challenger")
    # The holdout table names both registered versions next to the baselines, each with its
    # recall interval at the same budget.
    for shown in ("static limits", "rolling z-score", "ISO 10816 zones", "recall_lo"):
        assert shown in text, shown
    assert f"{name} v{champion}" in text
    assert f"{ml_models.models.anomaly_model} v{anomaly.version}" in text
    assert f"decision: {name} v{champion} promoted to champion (previous champion: none)" in text
