"""The `rate_of_change` kind: the largest plausible |Δvalue/Δt| between consecutive usable
readings of one sensor. It looks back: silver carries the previous reading between batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyspark.sql import Column
from pyspark.sql import functions as F

from plantlake.pipelines.transforms.rules import columns as c
from plantlake.pipelines.transforms.rules.base import Fail, Prepared, ReadingContext, RuleParams
from plantlake.pipelines.transforms.rules.range import (
    quantity_scope,
    reading_in_quantity_scope,
    unit_measures,
)


@dataclass(frozen=True)
class RateOfChangeParams(RuleParams):
    """Largest plausible |Δvalue/Δt| between consecutive readings of one sensor, per second."""

    kind: ClassVar[str] = "rate_of_change"
    required: ClassVar[tuple[str, ...]] = ("quantity", "unit", "max_per_second")
    looks_back: ClassVar[str | None] = "the previous plausible reading of the same sensor"

    quantity: str
    unit: str
    max_per_second: float
    # Over shorter gaps a rate is dominated by noise and quantization: Δt counts as at least this.
    min_seconds: float = 1.0
    asset_classes: tuple[str, ...] = ()
    sensors: tuple[str, ...] = ()

    def check_values(self, fail: Fail) -> None:
        unit_measures(self.quantity, self.unit, fail)
        if min(self.max_per_second, self.min_seconds) <= 0:
            fail("bad-value", "max_per_second and min_seconds must be above 0")

    def scope(self) -> Column:
        return quantity_scope(self.quantity, self.unit, self.asset_classes, self.sensors)

    def in_scope(self, r: Prepared) -> bool:
        return reading_in_quantity_scope(r, self.quantity, self.unit, self.asset_classes,
                                         self.sensors)  # fmt: skip

    def failure(self, name: str, *, now_ms: int) -> tuple[Column, Column]:
        v, prev = c.value(), F.col(c.PREV_VALUE)
        dt_ms = F.col("event_time_ms") - F.col(c.PREV_TIME)
        rate = F.abs(v - prev) / (F.greatest(dt_ms, F.lit(self.min_seconds * 1000)) / 1000)
        fails = (
            F.col(c.IN_ORDER) & F.col(c.USABLE) & prev.isNotNull() & (rate > self.max_per_second)
        )
        unit = self.unit
        reason = F.format_string(
            f"%s %s from %s to %s {unit} in %s s (%s {unit}/s); the limit for {self.quantity} "
            f"is {c.g(self.max_per_second)} {unit}/s",
            F.col("sensor"),
            F.when(v > prev, "rose").otherwise("fell"),
            c.num(prev),
            c.num(v),
            c.num(dt_ms / 1000),
            c.num(rate),
        )
        return F.coalesce(fails, F.lit(False)), reason

    def fails(self, name: str, r: Prepared, ctx: ReadingContext) -> bool:
        checks, v, t = ctx.checks, r.value, r.event_time_ms
        if not (ctx.in_order and ctx.usable) or v is None:
            return False
        if checks.prev_value is None or checks.prev_time is None:
            return False
        dt_ms = max(t - checks.prev_time, self.min_seconds * 1000)
        return abs(v - checks.prev_value) / (dt_ms / 1000) > self.max_per_second
