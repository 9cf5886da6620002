"""The results of a snapshot validation, per table and expectation, and their console summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantlake.core.expectation_spec import ExpectationSpec

STREAM_ONLY = "stream-only"
SKIPPED_MISSING = "skipped: does not exist yet"


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result. `success` is None for a stream-only rule (not evaluated)."""

    rule: str
    expectation: str
    success: bool | None
    unexpected_count: int | None = None
    checked: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class TableValidation:
    table: str
    status: str  # passed, failed or skipped
    reason: str = ""
    version: int | None = None  # the Delta version validated
    outcomes: tuple[ExpectationOutcome, ...] = ()

    @property
    def evaluated(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if o.success is not None)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if o.success is False)


@dataclass(frozen=True)
class ValidationReport:
    tables: tuple[TableValidation, ...]
    docs_index: Path | None  # None when no table existed, so no Data Docs were written

    @property
    def success(self) -> bool:
        """No validated table failed (skipped tables do not count)."""
        return all(t.status != "failed" for t in self.tables)

    def table(self, name: str) -> TableValidation:
        return next(t for t in self.tables if t.table == name)


def outcome_from_result(spec: ExpectationSpec, result: Mapping[str, Any]) -> ExpectationOutcome:
    """An outcome from one GE expectation result as a dict (`ExpectationValidationResult.to_json_dict()`)."""
    detail = ""
    info = result.get("exception_info") or {}
    if info.get("raised_exception"):
        # A missing column or a type GE cannot compare: the table's schema drifted from the suite.
        detail = f"error: {info.get('exception_message')}"
    values = (result.get("result") or {}).get("partial_unexpected_list") or []
    if values and not detail:
        detail = "e.g. " + ", ".join(repr(v) for v in values[:5])
    res = result.get("result") or {}
    return ExpectationOutcome(
        rule=spec.rule,
        expectation=spec.expectation or STREAM_ONLY,
        success=bool(result.get("success")),
        unexpected_count=res.get("unexpected_count"),
        checked=res.get("element_count"),
        detail=detail,
    )


def format_report(report: ValidationReport) -> str:
    """The console summary: per table its expectations, passed and failed, then each failure,
    the stream-only rules and where the Data Docs are."""
    header = ("table", "expectations", "passed", "failed", "")
    rows = [header]
    for t in report.tables:
        if t.status == "skipped":
            rows.append((t.table, "-", "-", "-", t.reason))
            continue
        done = t.evaluated
        passed = sum(o.success is True for o in done)
        note = f"version {t.version}" if t.version is not None else ""
        rows.append((t.table, str(len(done)), str(passed), str(len(done) - passed), note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    for t in report.tables:
        for o in t.failed:
            count = (
                f"{o.unexpected_count} of {o.checked} rows checked"
                if o.unexpected_count is not None
                else ""
            )
            lines.append(f"FAILED {t.table} {o.rule} ({o.expectation}) {count} {o.detail}".rstrip())
    stream_only = sorted({o.rule for t in report.tables for o in t.outcomes if o.success is None})
    if stream_only:
        lines.append(
            f"stream-only (checked by the silver job, not on a snapshot): {', '.join(stream_only)}"
        )
    if report.docs_index is not None:
        lines.append(f"Data Docs: {report.docs_index}")
    return "\n".join(lines)
