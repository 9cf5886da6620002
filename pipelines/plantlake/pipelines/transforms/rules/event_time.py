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
        checks: list[tuple[Column, Column]] = [(t.isNull(), F.lit("event time is missing"))]
        if self.max_future_seconds is not None:
            ahead = t - F.lit(now_ms)
            checks.append((
                ahead > self.max_future_seconds * 1000,
                F.format_string(
                    f"event time %s s ahead of the silver job's clock (tolerance "
                    f"{c.g(self.max_future_seconds)} s): check the device clock",
                    c.num(ahead / 1000),
                ),
            ))  # fmt: skip
        if self.max_ahead_of_receive_seconds is not None:
            ahead = t - received
            checks.append((
                ahead > self.max_ahead_of_receive_seconds * 1000,
                F.format_string(
                    f"device clock %s s ahead of the edge's receive time (tolerance "
                    f"{c.g(self.max_ahead_of_receive_seconds)} s): check the device's time sync",
                    c.num(ahead / 1000),
                ),
            ))  # fmt: skip
        if self.max_delay_seconds is not None:
            late = received - t
            checks.append((
                late > self.max_delay_seconds * 1000,
                F.format_string(
                    f"received %s h after its event time (bound "
                    f"{c.g(self.max_delay_seconds / 3600)} h): check the device clock",
                    c.num(late / 3_600_000),
                ),
            ))  # fmt: skip
        first, text = checks[0]
        fails = F.coalesce(first, F.lit(False))
        reason = F.when(fails, text)
        for cond, text in checks[1:]:
            cond = F.coalesce(cond, F.lit(False))
            fails = fails | cond
            reason = reason.when(cond, text)
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
