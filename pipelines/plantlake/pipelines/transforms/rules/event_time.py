"""The `event_time` kind: bounds on a reading's event time against the clocks that saw it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyspark.sql import Column
from pyspark.sql import functions as F

from plantlake.core.expectation_spec import RECEIVE_LAG, ExpectationSpec, mostly
from plantlake.pipelines.transforms.rules import columns as c
from plantlake.pipelines.transforms.rules.base import Fail, Prepared, ReadingContext, RuleParams


@dataclass(frozen=True)
class EventTimeParams(RuleParams):
    """Bounds on a reading's event time; each is optional, at least one is set."""

    kind: ClassVar[str] = "event_time"

    max_future_seconds: float | None = None  # ahead of processing time (`now_ms`)
    max_ahead_of_receive_seconds: float | None = None  # device clock ahead of the edge's clock
    max_delay_seconds: float | None = None  # event time older than receive time by more

    def _bounds(self) -> tuple[float | None, ...]:
        return (self.max_future_seconds, self.max_ahead_of_receive_seconds,
                self.max_delay_seconds)  # fmt: skip

    def check_values(self, fail: Fail) -> None:
        if all(b is None for b in self._bounds()):
            fail(
                "missing-param",
                "an event_time rule needs max_future_seconds, max_ahead_of_receive_seconds "
                "or max_delay_seconds",
            )
        if any(b is not None and b < 0 for b in self._bounds()):
            fail("bad-value", "event time bounds must not be negative")

    def failure(self, name: str, *, now_ms: int) -> tuple[Column, Column]:
        t, received = F.col("event_time_ms"), F.col("receive_time_ms")
        # (bound in s, the gap it bounds in ms, the ms of the unit a reason states it in, reason)
        bounds = (
            (self.max_future_seconds, t - F.lit(now_ms), 1000,
             "event time %s s ahead of the silver job's clock (tolerance {} s): check the device clock"),
            (self.max_ahead_of_receive_seconds, t - received, 1000,
             "device clock %s s ahead of the edge's receive time (tolerance {} s): check the device's time sync"),
            (self.max_delay_seconds, received - t, 3_600_000,
             "received %s h after its event time (bound {} h): check the device clock"),
        )  # fmt: skip
        fails = F.coalesce(t.isNull(), F.lit(False))
        reason = F.when(fails, F.lit("event time is missing"))
        for bound_s, gap_ms, unit_ms, text in bounds:
            if bound_s is None:
                continue
            over = F.coalesce(gap_ms > bound_s * 1000, F.lit(False))
            fails = fails | over
            stated = text.format(c.g(bound_s * 1000 / unit_ms))
            reason = reason.when(over, F.format_string(stated, c.num(gap_ms / unit_ms)))
        return fails, reason

    def fails(self, name: str, r: Prepared, ctx: ReadingContext) -> bool:
        t, received = r.event_time_ms, r.receive_time_ms
        return (
            (
                self.max_future_seconds is not None
                and t - ctx.now_ms > self.max_future_seconds * 1000
            )
            or (
                self.max_ahead_of_receive_seconds is not None
                and t - received > self.max_ahead_of_receive_seconds * 1000
            )
            or (self.max_delay_seconds is not None and received - t > self.max_delay_seconds * 1000)
        )

    def expectation_specs(
        self, name: str, action: str, table: str, *, now_ms: int
    ) -> list[ExpectationSpec]:
        share = mostly(action)
        specs = [
            ExpectationSpec(
                table, name, "ExpectColumnValuesToNotBeNull",
                {"column": "event_time_ms", "mostly": share},
            )
        ]  # fmt: skip
        if self.max_future_seconds is not None:
            limit = now_ms + int(self.max_future_seconds * 1000)
            specs.append(
                ExpectationSpec(
                    table, name, "ExpectColumnValuesToBeBetween",
                    {"column": "event_time_ms", "max_value": limit, "mostly": share},
                )
            )  # fmt: skip
        # receive_lag_ms = receive time - event time: negative when the device clock runs ahead.
        lag: dict[str, int] = {}
        if self.max_ahead_of_receive_seconds is not None:
            lag["min_value"] = -int(self.max_ahead_of_receive_seconds * 1000)
        if self.max_delay_seconds is not None:
            lag["max_value"] = int(self.max_delay_seconds * 1000)
        if lag:
            specs.append(
                ExpectationSpec(
                    table, name, "ExpectColumnValuesToBeBetween",
                    {"column": RECEIVE_LAG[0], **lag, "mostly": share}, derived=(RECEIVE_LAG,),
                )
            )  # fmt: skip
        return specs
