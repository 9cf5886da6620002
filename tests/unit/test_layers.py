"""Issue 9: pure logic stays pure. The import contracts (`make lint`) keep adapters and clients
out of the transform and logic packages; this scan catches what an import cannot show: a Spark
read, write or action, or the Settings model, used inside pure code."""

import ast
from pathlib import Path

import pytest

import plantlake.models.logic
import plantlake.pipelines.transforms

PURE_PACKAGES = (plantlake.pipelines.transforms, plantlake.models.logic)
# Reads, writes and actions pull data through the driver or touch storage; pure code returns plans.
IO_ATTRIBUTES = {"read", "readStream", "write", "writeStream", "collect", "toPandas"}


def _pure_modules() -> list[Path]:
    """Every module file of the pure packages, subpackages included."""
    return sorted(
        path
        for package in PURE_PACKAGES
        for path in Path(package.__path__[0]).rglob("*.py")
        if path.name != "__init__.py"
    )


def _io_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in IO_ATTRIBUTES:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Name | ast.alias) and "Settings" in (
                getattr(node, "id", None) or getattr(node, "name", "")):  # fmt: skip
            found.append((getattr(node, "lineno", 0), "Settings"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def test_the_scan_finds_io_and_settings():
    sample = "from plantlake.core.config import Settings\ndf.write.save(p)\nrows = df.collect()\n"
    assert _io_uses(sample) == ["line 1: Settings", "line 2: .write", "line 3: .collect"]
    assert _io_uses("df = df.withColumn('x', F.col('y') * 2)\n") == []


def test_there_are_pure_modules_to_scan():
    names = {path.stem for path in _pure_modules()}
    assert {"aggregates", "features", "dedup", "evaluation", "work_orders", "stuck"} <= names


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda path: path.stem)
def test_pure_modules_do_no_io_and_take_no_settings(path):
    assert _io_uses(path.read_text()) == [], f"{path} is in a pure package"
