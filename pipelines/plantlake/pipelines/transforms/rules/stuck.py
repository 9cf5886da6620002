"""The `stuck` kind: a run of readings that stays within `epsilon` of the one before for too
long. It looks back: silver carries where each sensor's current run began between batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyspark.sql import Column
from pyspark.sql import functions as F

from plantlake.pipelines.transforms.rules import columns as c
from plantlake.pipelines.transforms.rules.base import Fail, Prepared, ReadingContext, RuleParams


@dataclass(frozen=True)
class StuckParams(RuleParams):
    """A sensor is stuck when at least `min_readings` consecutive readings spanning at least
    `min_minutes` all stay within `epsilon` of the reading before them."""

    kind: ClassVar[str] = "stuck"
    required: ClassVar[tuple[str, ...]] = ("quantities", "min_minutes", "min_readings")
    looks_back: ClassVar[str | None] = "the run of readings of the same sensor before it"

    quantities: tuple[str, ...]
    min_minutes: float
    min_readings: int
    epsilon: float = 0.0
    # Values a working sensor may hold exactly (0 A or 0 m3/h while the machine is stopped).
    allowed_constant_values: tuple[float, ...] = ()

    def check_values(self, fail: Fail) -> None:
        if not self.quantities:
            fail("bad-value", "quantities must list at least one quantity")
        if self.min_minutes <= 0 or self.min_readings < 2:
            fail("bad-value", "min_minutes must be above 0 and min_readings at least 2")
        if self.epsilon < 0:
            fail("bad-value", "epsilon must not be negative")

    def scope(self) -> Column:
        return F.col("quantity").isin(*self.quantities)

    def in_scope(self, r: Prepared) -> bool:
        return r.quantity in self.quantities

    def run_starts(self, value: Column, prev_raw: Column) -> Column:
        # A run of unchanged values starts where a value moves more than epsilon from the one
        # before; null/NaN readings neither start nor end a run.
        return value.isNotNull() & (prev_raw.isNull() | (F.abs(value - prev_raw) > self.epsilon))

    def failure(self, name: str, *, now_ms: int) -> tuple[Column, Column]:
        v = c.value()
        since = F.col(c.run_start(name))
        readings = F.col(c.COUNT) - F.col(c.run_first(name)) + 1
        span_ms = F.col("event_time_ms") - since
        allowed = (
            v.isin(*self.allowed_constant_values) if self.allowed_constant_values else F.lit(False)
        )
        fails = (
            F.col(c.IN_ORDER)
            & v.isNotNull()
            & ~allowed
            & (readings >= self.min_readings)
            & (span_ms >= self.min_minutes * 60_000)
        )
        change = (
            "without change"
            if self.epsilon == 0
            else f"each within {c.g(self.epsilon)} of the last"
        )
        reason = F.format_string(
            f"%s stuck at %s %s for %s min (%s readings {change}); a working sensor varies",
            F.col("sensor"),
            c.num(v),
            F.coalesce(F.col("unit"), F.lit("")),
            c.num(span_ms / 60_000),
            readings,
        )
        return F.coalesce(fails, F.lit(False)), reason

    def advance(self, name: str, r: Prepared, ctx: ReadingContext) -> None:
        """(start time, first count) of the unchanged run this reading is in."""
        v, prev = r.value, ctx.checks.prev_raw
        starts = v is not None and (prev is None or abs(v - prev) > self.epsilon)
        ctx.runs[name] = (r.event_time_ms, ctx.count) if starts else ctx.checks.runs.get(name)

    def fails(self, name: str, r: Prepared, ctx: ReadingContext) -> bool:
        v, run = r.value, ctx.runs.get(name)
        if not ctx.in_order or v is None or run is None or v in self.allowed_constant_values:
            return False
        start, first = run
        return (
            ctx.count - first + 1 >= self.min_readings
            and r.event_time_ms - start >= self.min_minutes * 60_000
        )
