"""The `quality` kind: the device's own quality flag is one the rule accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyspark.sql import Column
from pyspark.sql import functions as F

from plantlake.core.contracts import QUALITIES
from plantlake.core.expectation_spec import ExpectationSpec, mostly
from plantlake.pipelines.transforms.rules.base import Fail, Prepared, ReadingContext, RuleParams


@dataclass(frozen=True)
class QualityParams(RuleParams):
    kind: ClassVar[str] = "quality"

    accepted: tuple[str, ...] = ("Good",)

    def check_values(self, fail: Fail) -> None:
        if unknown := set(self.accepted) - set(QUALITIES):
            fail("bad-value", f"accepted qualities {sorted(unknown)} are not in {QUALITIES}")
        if not self.accepted:
            fail("bad-value", "accepted must list at least one quality")

    def failure(self, name: str, *, now_ms: int) -> tuple[Column, Column]:
        fails = ~F.coalesce(F.col("quality").isin(*self.accepted), F.lit(False))
        reason = F.format_string(
            "%s reported quality %s", F.col("sensor"), F.coalesce(F.col("quality"), F.lit("none"))
        )
        return fails, reason

    def fails(self, name: str, r: Prepared, ctx: ReadingContext) -> bool:
        return r.quality not in self.accepted

    def expectation_specs(
        self, name: str, action: str, table: str, *, now_ms: int
    ) -> list[ExpectationSpec]:
        return [
            ExpectationSpec(
                table, name, "ExpectColumnValuesToBeInSet",
                {"column": "quality", "value_set": list(self.accepted), "mostly": mostly(action)},
            )
        ]  # fmt: skip
