"""Issue 10: the workbench's front-end files are the vendored ones its README names, and no
template loads anything from another origin or runs inline script (the CSP would block it)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import plantlake.workbench

PACKAGE = Path(plantlake.workbench.__file__).parent
STATIC, TEMPLATES = PACKAGE / "static", PACKAGE / "templates"


def readme_checksums() -> dict[str, str]:
    """file -> sha256 from the table in static/README.md."""
    rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$",
                      (STATIC / "README.md").read_text(), re.M)  # fmt: skip
    return dict(rows)


def test_vendored_files_match_their_readme_checksums():
    checksums = readme_checksums()
    assert "htmx.min.js" in checksums
    for name, expected in checksums.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == expected, name


def test_templates_load_nothing_from_another_origin_and_have_no_inline_script():
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r'(src|href|action)="(https?:)?//', text), template.name
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert 'src="/static/' in tag, (template.name, tag)
        assert not re.search(r"\son[a-z]+=", text), template.name  # inline handlers: blocked
        assert "<style" not in text and ' style="' not in text, template.name


def test_the_base_page_loads_htmx_and_the_stylesheet_from_static():
    base = (TEMPLATES / "base.html").read_text()
    assert '<script src="/static/htmx.min.js"' in base
    assert '<link rel="stylesheet" href="/static/workbench.css">' in base
    assert (STATIC / "workbench.css").is_file()
