import json
import os
import subprocess
import sys


def _plantlake(*args, env=None):
    return subprocess.run(
        [sys.executable, "-c", "from plantlake.app.cli import main; main()", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120,
    )  # fmt: skip


def test_help_does_not_start_a_jvm_or_import_spark():
    code = "import sys; from plantlake.app.cli import app; assert 'pyspark' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert "up" in _plantlake("--help").stdout


def test_bad_setting_prints_one_error_paragraph(tmp_path):
    result = _plantlake("status", env={"PLANTLAKE_HOME": str(tmp_path),
                                       "PLANTLAKE_LAKE__ROOT": "hdfs://nn/x"})  # fmt: skip
    assert result.returncode == 1
    assert "error [config]" in result.stderr
    assert "lake.root" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_home_folder_is_made_private(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    result = _plantlake("status", "--json", env={"PLANTLAKE_HOME": str(home),
                                                 "PLANTLAKE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert home.stat().st_mode & 0o777 == 0o700
    # What a plantlake process (and what it starts) writes afterwards is its owner's alone.
    code = ("from pathlib import Path; from plantlake.app.local_secrets import make_home_private; "
            f"make_home_private(Path({str(home)!r})); Path({str(home)!r}, 'x').write_text('x')")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (home / "x").stat().st_mode & 0o777 == 0o600


def test_status_json_reports_down_services_and_exit_code(tmp_path):
    # Ports nobody listens on: every service must read as down, with a reason.
    env = {
        "PLANTLAKE_HOME": str(tmp_path),
        "PLANTLAKE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "PLANTLAKE_S3__ENDPOINT": "http://127.0.0.1:2",
        "PLANTLAKE_MQTT__PORT": "3",
        "PLANTLAKE_MLFLOW__PORT": "4",
        "PLANTLAKE_SPARK__MASTER_WEBUI_PORT": "5",
        "PLANTLAKE_WORKBENCH__PORT": "6",
    }
    result = _plantlake("status", "--json", env=env)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    assert {s["name"] for s in report["services"]} == {
        "minio",
        "kafka",
        "mosquitto",
        "mlflow",
        "workbench",
        "spark-master",
        "spark-worker",
    }
    assert all(s["status"] == "down" and s["detail"] for s in report["services"])


def test_reference_schema_prints_the_published_schema_and_import_wants_one_file(tmp_path):
    from pathlib import Path

    published = Path(__file__).parents[2] / "infra" / "schemas" / "asset_registry.schema.json"
    printed = _plantlake("reference", "schema", env={"PLANTLAKE_HOME": str(tmp_path)})
    assert printed.returncode == 0
    assert json.loads(printed.stdout) == json.loads(published.read_text())
    neither = _plantlake("reference", "import", env={"PLANTLAKE_HOME": str(tmp_path)})
    assert neither.returncode != 0 and "--csv FILE or --yaml FILE" in neither.stderr
