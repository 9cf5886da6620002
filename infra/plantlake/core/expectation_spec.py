"""Expectations as data, engine-neutral: what a rule or a table promise looks like to a snapshot
validator (Great Expectations runs them in `plantlake.pipelines.jobs.validate`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A warn rule's failing rows land in silver by design; a few are expected, a flood is not (a
# whole edge node reporting Bad, every device clock drifting): the snapshot fails above 5 %.
WARN_MOSTLY = 0.95

# Columns computed on the snapshot for the checks that relate two columns or need NaN as null.
# Spark orders NaN above every number, so a NaN would read as "above the maximum"; the silver
# job treats it as a missing value (excused when the quality is Bad), and so does this.
VALUE = ("value_without_nan", "nanvl(value, CAST(NULL AS DOUBLE))")
RECEIVE_LAG = ("receive_lag_ms", "unix_millis(receive_time) - event_time_ms")


@dataclass(frozen=True)
class Condition:
    """One conjunct of a row condition: `column op value`, op one of ==, !=, in."""

    column: str
    op: str
    value: str | tuple[str, ...]


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation on one table, engine-neutral.

    `expectation` is the class name in `great_expectations.expectations`, or None for a rule
    that no snapshot expectation expresses (`note` says why). `row_condition` conjuncts select
    the rows it checks; `derived` are (column, Spark SQL expression) it reads that the table
    does not have.
    """

    table: str
    rule: str
    expectation: str | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    row_condition: tuple[Condition, ...] = ()
    derived: tuple[tuple[str, str], ...] = ()
    note: str = ""

    @property
    def stream_only(self) -> bool:
        return self.expectation is None

    def columns(self) -> set[str]:
        """Every column the expectation reads (after the derived ones are added)."""
        names = {c.column for c in self.row_condition}
        for key in ("column", "column_A", "column_B"):
            if key in self.kwargs:
                names.add(self.kwargs[key])
        names.update(self.kwargs.get("column_list", ()))
        return names


def mostly(action: str) -> float:
    """The share of rows that must pass: a warn rule tolerates a few failures."""
    return WARN_MOSTLY if action == "warn" else 1.0


def among(column: str, names: tuple[str, ...]) -> tuple[Condition, ...]:
    """`column in names`; an empty list means every value, so no conjunct (as in a rule scope)."""
    return (Condition(column, "in", names),) if names else ()
