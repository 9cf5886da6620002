"""The demo's data-quality report: which of silver's rules fired on this demo's readings, with an
example reason each, and whether silver caught every fault the simulated plant injects at launch
(app layer)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from plantlake.core.config import Settings
from plantlake.simulator.launch_faults import (
    KIND_LABELS,
    LaunchFault,
    LaunchFaultKind,
    LaunchFaults,
)

# Most severe first: the order of the report's rows.
_SEVERITY = {"fail": 0, "quarantine": 1, "drop": 2, "warn": 3}


@dataclass(frozen=True)
class Judged:
    """A reading of a launch-fault sensor that silver held back or warned about."""

    asset: str
    sensor: str
    value: float | None  # as the device sent it
    quality: str
    rules: tuple[str, ...]  # every rule it failed


def _caught(fault: LaunchFault, reading: Judged, kinds: Mapping[str, str]) -> bool:
    """Whether a judged reading shows that silver caught the fault."""
    if (reading.asset, reading.sensor) != (fault.asset, fault.sensor):
        return False
    failed = {kinds.get(rule) for rule in reading.rules}
    has_value = reading.value is not None and not math.isnan(reading.value)
    if fault.kind is LaunchFaultKind.IMPOSSIBLE:
        return has_value and "range" in failed
    if fault.kind is LaunchFaultKind.NAN_GOOD:
        return not has_value and reading.quality == "Good" and "range" in failed
    if fault.kind is LaunchFaultKind.NAN_BAD:
        return not has_value and reading.quality == "Bad" and "quality" in failed
    if fault.kind is LaunchFaultKind.STUCK:
        return "stuck" in failed
    return "unit" in failed  # WRONG_UNIT


def missed_faults(
    faults: LaunchFaults, judged: Iterable[Judged], kinds: Mapping[str, str]
) -> list[LaunchFault]:
    """The launch faults that no judged reading shows caught. `kinds` maps a rule's name to its
    kind (range, stuck, quality, ...; silver's own unit check to "unit")."""
    readings = list(judged)
    return [f for f in faults.faults if not any(_caught(f, r, kinds) for r in readings)]


def print_rule_report(
    spark, settings: Settings, console: Console, *, started_ms: int, silver_began_ms: int
) -> None:
    """Print silver's rules that fired on the readings received since `started_ms` (quarantine
    rules from silver.quarantine; warn and drop rules from the silver.dq_metrics of the batches
    written since `silver_began_ms`), then a red line per launch fault silver did not catch."""
    from pyspark.sql import functions as F

    from plantlake.adapters.delta import read_delta
    from plantlake.core.contracts import SILVER_DQ_METRICS, SILVER_QUARANTINE, SILVER_TELEMETRY
    from plantlake.pipelines.transforms.expectations import UNIT_RULE, load_rules
    from plantlake.simulator.launch_faults import launch_faults
    from plantlake.simulator.plant import build_plant

    # The demo's simulator built its plant at its own launch; the faulty sensors are the same.
    faults = launch_faults(build_plant(settings.simulator.seed))
    targets = {(f.asset, f.sensor) for f in faults.faults}
    is_target = F.lit(False)
    for asset, sensor in targets:
        is_target = is_target | ((F.col("asset") == asset) & (F.col("sensor") == sensor))
    fresh = F.col("receive_time") >= F.timestamp_millis(F.lit(started_ms))
    lake = settings.lake
    held = read_delta(spark, SILVER_QUARANTINE.path(lake)).where(fresh)
    kept = read_delta(spark, SILVER_TELEMETRY.path(lake)).where(fresh)

    # Examples: from a launch-fault sensor when the rule caught one there, with a value (an
    # impossible reading says more than a missing one), and for warnings a Bad one first.
    target = is_target.cast("int") * 4
    has_value = F.col("value").isNotNull().cast("int") * 2
    reason = F.col("f.reason")
    named = F.when(reason.contains(F.col("asset")), reason).otherwise(
        F.concat_ws(": ", "asset", reason)
    )
    blocking = (
        held.select("asset", "sensor", "value", F.explode("failed_rules").alias("f"))
        .where(F.col("f.action").isin("quarantine", "fail"))
        .groupBy("f.rule", "f.action")
        .agg(F.count("*").alias("n"), F.max_by(named, target + has_value).alias("example"))
        .collect()
    )
    value = F.col("source_value")
    shown = (
        F.when(value.isNull(), F.lit("no value"))
        .when(F.isnan(value), F.lit("NaN"))
        .otherwise(F.concat_ws(" ", F.round(value, 3).cast("string"), F.col("source_unit")))
    )
    example = F.format_string("%s %s reported quality %s (%s)", "asset", "sensor", "quality", shown)
    bad_first = target + (F.col("quality") == "Bad").cast("int") * 2
    warned: dict[str, str] = {
        r.rule: r.example
        for r in kept.select(F.explode("dq_warnings").alias("rule"), "asset", "sensor", "quality",
                             "source_value", "source_unit")
        .groupBy("rule").agg(F.max_by(example, bad_first).alias("example"))
        .collect()
    }  # fmt: skip
    counted = (
        read_delta(spark, SILVER_DQ_METRICS.path(lake))
        .where(F.col("batch_time") >= F.timestamp_millis(F.lit(silver_began_ms)))
        .where(F.col("action").isin("warn", "drop"))
        .groupBy("rule", "action").agg(F.sum("failed").alias("n"))
        .where(F.col("n") > 0)
        .collect()
    )  # fmt: skip
    rows = [(r.rule, r.action, r.n, r.example) for r in blocking] + [
        (r.rule, r.action, r.n, warned.get(r.rule, "")) for r in counted
    ]
    table = Table(
        title="silver's rules on this demo's readings",
        caption="quarantine: held in silver.quarantine for a planner's review; warn: kept in "
        "silver.telemetry, named in dq_warnings (counts from silver.dq_metrics)",
    )
    for name in ("rule", "action", "count", "example reason"):
        table.add_column(name)
    for rule, action, n, text in sorted(rows, key=lambda r: (_SEVERITY.get(r[1], 9), -r[2])):
        table.add_row(rule, action, str(n), text or "")
    console.print(table)

    judged_rows = (
        held.where(is_target)
        .select("asset", "sensor", "value", "quality", F.col("failed_rules.rule").alias("rules"))
        .unionByName(
            kept.where(is_target & (F.size("dq_warnings") > 0)).select(
                "asset", "sensor", F.col("source_value").alias("value"), "quality",
                F.col("dq_warnings").alias("rules"))
        )
        .collect()
    )  # fmt: skip
    judged = [Judged(r.asset, r.sensor, r.value, r.quality, tuple(r.rules)) for r in judged_rows]
    kinds = {rule.name: rule.kind for rule in load_rules()} | {UNIT_RULE: "unit"}
    missed = missed_faults(faults, judged, kinds)
    for fault in missed:
        console.print(f"[red]silver did not catch the launch fault '{KIND_LABELS[fault.kind]}' "
                      f"of {fault.asset} {fault.sensor}: no reading of it was held back or "
                      "flagged by a rule of its kind[/]")  # fmt: skip
    if faults.faults and not missed:
        console.print(
            "[green]silver caught every fault the plant injected at launch: "
            + ", ".join(KIND_LABELS[f.kind] for f in faults.faults)
            + "[/]"
        )
