"""Issue 9: `pip install .` (not editable) gives a working plantlake, its data files included:
rule files, the edge filter config, the Maven poms, Kafka's logging config and the pins."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
from pathlib import Path
import plantlake.core
from plantlake.ingest.filters import DEFAULT_CONFIG
from plantlake.services.jars import MAVEN_DIR
from plantlake.pipelines.transforms.expectations import EXPECTATIONS_DIR, load_rules
from plantlake.services.kafka import LOG4J2
from plantlake.services.versions import versions

target = Path(sys.argv[1])
assert Path(plantlake.core.__file__).is_relative_to(target), plantlake.core.__file__
for path in (DEFAULT_CONFIG, MAVEN_DIR / "spark-jars.pom.xml", LOG4J2, EXPECTATIONS_DIR):
    assert path.is_relative_to(target) and path.exists(), path
print(versions().spark, len(load_rules()))
"""


def test_a_plain_install_works_without_the_checkout(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache"))  # fmt: skip
    target = tmp_path / "site"
    uv = Path(sys.executable).with_name("uv")
    installer = [str(uv), "pip", "install", "--python", sys.executable] if uv.exists() else [
        sys.executable, "-m", "pip", "install"]  # fmt: skip
    subprocess.run([*installer, "--quiet", "--no-deps", "--target", str(target), str(source)],
                   check=True, cwd=tmp_path)  # fmt: skip
    assert not (
        target / "plantlake" / "services" / "pyproject.toml"
    ).is_symlink()  # a copy, not a link

    env = {**os.environ, "PYTHONPATH": str(target)}  # ahead of the editable install
    found = subprocess.run([sys.executable, "-c", CHECK, str(target)], env=env, cwd=tmp_path,
                           capture_output=True, text=True)  # fmt: skip
    assert found.returncode == 0, found.stderr
    spark, rules = found.stdout.split()
    assert spark == "4.2.0" and int(rules) > 10

    cli = subprocess.run([sys.executable, "-c", "from plantlake.app.cli import main; main()",
                          "pipeline", "--help"], env=env, cwd=tmp_path, capture_output=True,
                         text=True)  # fmt: skip
    assert cli.returncode == 0 and "run" in cli.stdout, cli.stderr
