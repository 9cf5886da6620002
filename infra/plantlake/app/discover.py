"""`plantlake reference discover`: write a discovery's drafts for a person to review (app layer).

Two files per discovery in the chosen folder: `registry.draft.yaml` (the asset registry in the
form `plantlake reference import --yaml` loads, opening with what to review) and the edge's tag
list (`opcua-tags.yaml` or `sparkplug-metrics.yaml`). Nothing is loaded into the lake here, and
an existing draft is never overwritten unless asked to.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from plantlake.core.errors import ConfigError, SinkError
from plantlake.ingest.discovery import (
    Discovery,
    Draft,
    draft_registry,
    draft_yaml,
    summary,
    tag_list_yaml,
)

DRAFT_FILE = "registry.draft.yaml"
TAG_FILES = {"opcua": "opcua-tags.yaml", "sparkplug": "sparkplug-metrics.yaml"}


def import_command(draft: Path) -> str:
    return f"plantlake reference import --yaml {draft}"


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a reviewer never opens a half-written draft."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def draft_paths(out: Path, protocol: str) -> tuple[Path, Path]:
    """The registry draft and the tag list a discovery over `protocol` writes into `out`."""
    return out / DRAFT_FILE, out / TAG_FILES[protocol]


def refuse_overwrite(out: Path, protocol: str, *, force: bool) -> None:
    """Raise ConfigError when a draft is already in `out` and `force` is false (check before a
    discovery, not after it listened for a while)."""
    existing = [path for path in draft_paths(out, protocol) if path.exists()]
    if existing and not force:
        raise ConfigError(
            f"{existing[0]} already exists: a draft may hold someone's review.",
            hint="Pick another --out folder, or pass --force to overwrite it.",
        )


def write_drafts(
    discovery: Discovery, out: Path, *, force: bool = False
) -> tuple[Draft, list[Path]]:
    """Write the registry draft and the tag list into `out`; returns the draft and the paths.

    Raises ConfigError when either file exists and `force` is false, SinkError when the folder
    cannot be written.
    """
    refuse_overwrite(out, discovery.protocol, force=force)
    draft = draft_registry(discovery)
    draft_path, tags_path = draft_paths(out, discovery.protocol)
    files = {
        draft_path: draft_yaml(discovery, draft, import_hint=import_command(draft_path)),
        tags_path: tag_list_yaml(discovery, draft),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            _write(path, text)
    except OSError as exc:
        raise SinkError(f"Cannot write the discovery drafts to {out}: {exc}.") from exc
    return draft, list(files)


def report(console: Console, discovery: Discovery, draft: Draft, paths: list[Path]) -> None:
    """What was found and written, the review items, and the next step."""
    console.print(escape(summary(discovery, draft)))
    for review in draft.needs_review:
        console.print(f"  [yellow]review[/] {escape(review.asset)} / {escape(review.sensor)}: "
                      f"{escape(review.reason)}")  # fmt: skip
    for note in discovery.notes:
        console.print(f"  [yellow]note[/] {escape(note)}")
    for path in paths:
        console.print(f"wrote {escape(str(path))}")
    console.print(f"Review the draft, then `{escape(import_command(paths[0]))}`.")


def write_and_report(console: Console, discovery: Discovery, out: Path, *, force: bool) -> None:
    draft, paths = write_drafts(discovery, out, force=force)
    report(console, discovery, draft, paths)
