"""The stop a `fail` rule asks for: when a checked batch has a row that failed one, the silver
job raises ExpectationFailed naming the rule, the count and an example row (a Spark action)."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from plantlake.core.errors import ExpectationFailed
from plantlake.pipelines.transforms.expectations import Rule
from plantlake.pipelines.transforms.rule_evaluation import failed_rule, has_action


def raise_on_fail_rules(
    checked: DataFrame,
    rules: Sequence[Rule],
    *,
    metrics: Sequence[Row] | None = None,
    batch_id: int | None = None,
) -> None:
    """Raise ExpectationFailed if a row failed a rule whose action is `fail`.

    With `metrics` (the collected `rule_metrics` rows of this batch) it runs no Spark job unless
    a fail rule failed; then it fetches one example row for the message.
    """
    fail_rules = {r.name: r for r in rules if r.action == "fail"}
    if not fail_rules:
        return
    if metrics is not None:
        failed = {m["rule"]: m["failed"] for m in metrics if m["rule"] in fail_rules}
        if not any(failed.values()):
            return
        name = next(n for n in fail_rules if failed.get(n))
        count = failed[name]
    else:
        first = checked.where(has_action("fail")).select("dq_failures").first()
        if first is None:
            return
        name = next(f["rule"] for f in first["dq_failures"] if f["action"] == "fail")
        count = checked.where(failed_rule(name)).count()
    row = (
        checked.where(failed_rule(name))
        .select(
            "asset",
            "sensor",
            "event_time_ms",
            F.filter("dq_failures", lambda f: f["rule"] == name)[0]["reason"].alias("reason"),
        )
        .first()
    )
    if row is None:  # the failing rows were counted above, so one is there to show
        raise AssertionError(f"no row failed {name!r} although {count} were counted")
    example = (
        f"{row['asset']} {row['sensor']} at event_time_ms {row['event_time_ms']}: {row['reason']}"
    )
    rule = fail_rules[name]
    in_batch = f" in batch {batch_id}" if batch_id is not None else ""
    raise ExpectationFailed(
        f"silver.telemetry: expectation {name!r} (action fail) failed for {count} row(s)"
        f"{in_batch}, e.g. {example}.",
        rule=name,
        failed=count,
        example=example,
        hint=(
            "The silver job stopped so that no such row lands. Fix the data at its source, or "
            f"change the rule's action in {rule.source or 'expectations/'} to quarantine or "
            "drop; then restart the job (the batch is retried)."
        ),
    )
