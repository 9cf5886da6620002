"""The simulated plant's CMMS export: its failures, repairs and inspections as the CSV a
maintenance system would export (the ground truth the models learn from)."""

from __future__ import annotations

import csv
from pathlib import Path

from plantlake.core.config import Settings
from plantlake.simulator.plant import Plant, maintenance_log


def cmms_export_path(settings: Settings) -> Path:
    return settings.home / "simulator" / "cmms_export.csv"


def write_cmms_export(plant: Plant, until_ms: int, path: Path) -> int:
    """Write every maintenance event up to `until_ms` as a CMMS CSV export; returns the count."""
    events = maintenance_log(plant, until_ms)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["asset", "event", "failure_mode", "time_ms"])
        writer.writerows((e.asset, e.kind, e.failure_mode or "", e.time_ms) for e in events)
    partial.replace(path)  # readers never see a half-written export
    return len(events)
