"""The README's lake contract names every table the code declares."""

from pathlib import Path

from plantlake.core.contracts import TABLES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_declared_table_is_in_the_readme_contract():
    text = README.read_text()
    missing = [t.name for t in TABLES if f"`{t.name}`" not in text]
    assert missing == []
