"""What every rule kind provides, and the reading the row-wise evaluator hands it.

A rule kind is one module of this package: its params (a frozen dataclass subclassing
`RuleParams`) and, as methods, the checks of its values, its scope, its check in Spark (silver)
and on one reading (the hot path), its failure message, its snapshot expectations (Great
Expectations) and whether it looks back at the sensor's earlier readings. Adding a kind is one
new module plus one line in `rules/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, NoReturn

from pyspark.sql import Column
from pyspark.sql import functions as F

from plantlake.core.expectation_spec import ExpectationSpec

# Raises ExpectationConfigError for the rule being parsed: (code, message).
Fail = Callable[[str, str], NoReturn]


@dataclass(slots=True)
class Prepared:
    """A reading as the rules see it: canonical value (None for null or NaN) and unit, registry
    columns, and `unit_error` when its unit could not be normalized (silver's `unit` rule)."""

    asset: str
    sensor: str
    asset_class: str | None
    quantity: str | None
    value: float | None
    unit: str | None
    quality: str
    event_time_ms: int
    receive_time_ms: int
    unit_error: bool


@dataclass(slots=True)
class SensorChecks:
    """What the sequence rules carry per sensor between readings (by event time).

    prev_value/prev_time: the last usable reading (not null, not Bad, inside its ranges), for
    rate_of_change; prev_raw and count: the last non-null value and how many there were; runs:
    per stuck rule, (event time, count) of the reading that began the current unchanged run.
    """

    last_time: int | None = None
    prev_value: float | None = None
    prev_time: int | None = None
    prev_raw: float | None = None
    count: int = 0
    runs: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "last_time": self.last_time, "prev_value": self.prev_value,
            "prev_time": self.prev_time, "prev_raw": self.prev_raw, "count": self.count,
            "runs": {name: list(run) for name, run in self.runs.items()},
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping) -> SensorChecks:
        runs = {name: (int(run[0]), int(run[1])) for name, run in data.get("runs", {}).items()}
        fields = ("last_time", "prev_value", "prev_time", "prev_raw")
        return cls(**{k: data.get(k) for k in fields}, count=int(data.get("count", 0)), runs=runs)


@dataclass(slots=True)
class ReadingContext:
    """What a row-wise check sees besides the reading: the sensor's carried `checks` (as before
    this reading), whether the reading is newer than all of them (`in_order`), whether its value
    is usable for comparing, the non-null count including it, and the runs this reading leaves
    (filled by the kinds that track one)."""

    checks: SensorChecks
    now_ms: int
    in_order: bool
    usable: bool
    count: int
    runs: dict[str, tuple[int, int] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleParams:
    """The base of every kind's params. Subclasses set `kind`, `required` and override the
    checks; the defaults describe a row-local rule that applies to every reading."""

    kind: ClassVar[str]
    # Keys a rule of this kind must set in its file.
    required: ClassVar[tuple[str, ...]] = ()
    # Compares a reading with the same sensor's earlier ones in event-time order: silver carries
    # state for it between batches (silver.rule_state), and no snapshot expectation expresses it.
    looks_back: ClassVar[str | None] = None  # what it compares with, for the snapshot's note
    # Its failure makes a value implausible: the sequence rules then skip the value.
    bounds_plausibility: ClassVar[bool] = False

    def check_values(self, fail: Fail) -> None:
        """Cross-field checks a type cannot express; `fail` raises."""

    def scope(self) -> Column:
        """Whether a silver row is one the rule checks (may be null: read as false)."""
        return F.lit(True)

    def in_scope(self, r: Prepared) -> bool:
        """`scope` for one reading."""
        return True

    def failure(self, name: str, *, now_ms: int) -> tuple[Column, Column]:
        """(fails, reason) as Spark columns over silver rows in scope; sequence kinds read the
        working columns of `plantlake.pipelines.transforms.rule_evaluation` (see `rules.columns`)."""
        raise NotImplementedError(self.kind)

    def fails(self, name: str, r: Prepared, ctx: ReadingContext) -> bool:
        """Whether one reading in scope fails (the hot path's check)."""
        raise NotImplementedError(self.kind)

    def run_starts(self, value: Column, prev_raw: Column) -> Column | None:
        """For a kind that tracks a run of readings (stuck): where a new run starts. None: none."""
        return None

    def advance(self, name: str, r: Prepared, ctx: ReadingContext) -> None:
        """Track what this kind carries for the reading's sensor (in scope or not): stuck's run."""

    def expectation_specs(
        self, name: str, action: str, table: str, *, now_ms: int
    ) -> list[ExpectationSpec]:
        """The snapshot expectations that express the rule on `table`."""
        if self.looks_back is None:
            raise NotImplementedError(self.kind)
        return [
            ExpectationSpec(
                table, name, None,
                note=f"not expressible as a snapshot expectation: a {self.kind} rule compares a "
                f"reading with {self.looks_back} in event-time order; checked by the silver "
                "streaming job only",
            )
        ]  # fmt: skip


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    action: str
    description: str
    params: RuleParams
    source: str = field(default="", compare=False)
