"""The `known_asset` kind: the reading's asset and sensor are in the registry at its event time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyspark.sql import Column
from pyspark.sql import functions as F

from plantlake.core.expectation_spec import ExpectationSpec, mostly
from plantlake.pipelines.transforms.rules.base import Prepared, ReadingContext, RuleParams


@dataclass(frozen=True)
class KnownAssetParams(RuleParams):
    kind: ClassVar[str] = "known_asset"

    def failure(self, name: str, *, now_ms: int) -> tuple[Column, Column]:
        reason = F.format_string(
            "%s (sensor %s) is not in the asset registry at the reading's event time",
            "asset",
            "sensor",
        )
        return F.col("asset_class").isNull(), reason

    def fails(self, name: str, r: Prepared, ctx: ReadingContext) -> bool:
        return r.asset_class is None

    def expectation_specs(
        self, name: str, action: str, table: str, *, now_ms: int
    ) -> list[ExpectationSpec]:
        return [
            ExpectationSpec(
                table, name, "ExpectColumnValuesToNotBeNull",
                {"column": "asset_class", "mostly": mostly(action)},
            )
        ]  # fmt: skip
