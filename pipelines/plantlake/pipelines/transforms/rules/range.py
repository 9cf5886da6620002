"""The `range` kind: a quantity's plausible physical range, in its canonical unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyspark.sql import Column
from pyspark.sql import functions as F

from plantlake.core.expectation_spec import (
    VALUE,
    Condition,
    ExpectationSpec,
    among,
    mostly,
)
from plantlake.core.units import quantity_of
from plantlake.pipelines.transforms.rules import columns as c
from plantlake.pipelines.transforms.rules.base import Fail, Prepared, ReadingContext, RuleParams


def unit_measures(quantity: str, unit: str, fail: Fail) -> None:
    """Refuse a unit of another quantity; a unit pint does not know may belong to a quantity
    plantlake does not know yet: allowed."""
    measured = quantity_of(unit)
    if measured is not None and measured != quantity:
        fail("bad-value", f"unit {unit!r} measures {measured}, not {quantity}")


def quantity_scope(quantity: str, unit: str, asset_classes: tuple[str, ...],
                   sensors: tuple[str, ...]) -> Column:  # fmt: skip
    """Rows of `quantity` in `unit`, of the listed classes and sensors (empty lists: all)."""
    return (
        (F.col("quantity") == quantity)
        & F.col("unit").eqNullSafe(unit)
        & c.among("asset_class", asset_classes)
        & c.among("sensor", sensors)
    )


def reading_in_quantity_scope(r: Prepared, quantity: str, unit: str,
                              asset_classes: tuple[str, ...], sensors: tuple[str, ...]) -> bool:  # fmt: skip
    return (
        r.quantity == quantity
        and r.unit == unit
        and (not asset_classes or r.asset_class in asset_classes)
        and (not sensors or r.sensor in sensors)
    )


@dataclass(frozen=True)
class RangeParams(RuleParams):
    """Plausible physical range of `quantity`, in `unit` (the canonical unit silver stores)."""

    kind: ClassVar[str] = "range"
    required: ClassVar[tuple[str, ...]] = ("quantity", "unit")
    bounds_plausibility: ClassVar[bool] = True

    quantity: str
    unit: str
    min: float | None = None
    max: float | None = None
    asset_classes: tuple[str, ...] = ()  # empty: every asset class, and unknown assets too
    sensors: tuple[str, ...] = ()  # empty: every sensor of the quantity

    def check_values(self, fail: Fail) -> None:
        unit_measures(self.quantity, self.unit, fail)
        if self.min is None and self.max is None:
            fail("missing-param", "a range rule needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            fail("bad-value", f"min {self.min:g} is above max {self.max:g}")

    def scope(self) -> Column:
        return quantity_scope(self.quantity, self.unit, self.asset_classes, self.sensors)

    def in_scope(self, r: Prepared) -> bool:
        return reading_in_quantity_scope(r, self.quantity, self.unit, self.asset_classes,
                                         self.sensors)  # fmt: skip

    def failure(self, name: str, *, now_ms: int) -> tuple[Column, Column]:
        v = c.value()
        missing = v.isNull() & ~F.coalesce(F.col("quality") == "Bad", F.lit(False))
        high = v > self.max if self.max is not None else F.lit(False)
        low = v < self.min if self.min is not None else F.lit(False)
        unit = self.unit

        def beyond(word: str, limit: float | None) -> Column:
            bound = "maximum" if word == "above" else "minimum"
            return F.concat(
                F.format_string(
                    f"%s %s {unit} {word} the plausible {bound} {c.g(limit or 0.0)} {unit}",
                    F.col("sensor"),
                    c.num(v),
                ),
                F.coalesce(c.for_asset_class(), F.lit("")),
            )

        reason = (
            F.when(missing, F.format_string("%s has no value but quality %s", "sensor", "quality"))
            .when(high, beyond("above", self.max))
            .otherwise(beyond("below", self.min))
        )
        return missing | high | low, reason

    def fails(self, name: str, r: Prepared, ctx: ReadingContext) -> bool:
        v = r.value
        if v is None:
            return r.quality != "Bad"  # missing: the quality rule reports a Bad NaN, not this one
        return (self.max is not None and v > self.max) or (self.min is not None and v < self.min)

    def expectation_specs(
        self, name: str, action: str, table: str, *, now_ms: int
    ) -> list[ExpectationSpec]:
        scope = (
            Condition("quantity", "==", self.quantity),
            Condition("unit", "==", self.unit),
            *among("asset_class", self.asset_classes),
            *among("sensor", self.sensors),
        )
        bounds = {k: v for k, v in (("min_value", self.min), ("max_value", self.max))
                  if v is not None}  # fmt: skip
        return [
            ExpectationSpec(
                table, name, "ExpectColumnValuesToBeBetween",
                {"column": VALUE[0], **bounds, "mostly": mostly(action)},
                row_condition=scope, derived=(VALUE,),
            ),
            # The range rule also fails a reading without a value unless its quality says Bad.
            ExpectationSpec(
                table, name, "ExpectColumnValuesToNotBeNull",
                {"column": VALUE[0], "mostly": mostly(action)},
                row_condition=(*scope, Condition("quality", "!=", "Bad")), derived=(VALUE,),
            ),
        ]  # fmt: skip
