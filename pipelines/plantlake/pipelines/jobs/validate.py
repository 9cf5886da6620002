"""Snapshot validation of the silver and gold tables with Great Expectations, built from the same
YAML rules the silver job applies, with Data Docs as HTML (quality layer, batch).

Two halves. `suite_spec` and `gold_specs` are pure: they say which Great Expectations expectation
expresses each rule on a table snapshot, as plain `ExpectationSpec`s (no GE, no Spark).
`validate_lake` does the I/O: it reads each table at one Delta version, runs one GE Checkpoint per
table over the Spark DataFrame and writes Data Docs.

What a snapshot can and cannot check: silver.telemetry holds the rows that passed the silver
job's rules, so a rule whose action keeps failing rows out of it (quarantine, drop, fail) must
hold on every row, and a `warn` rule on most of them (its failing rows land, flagged in
`dq_warnings`). The stateful rules (rate_of_change, stuck) compare a reading with the readings of
the same sensor before it in event-time order; no column expectation says that, so they are
listed as stream-only (checked by the silver streaming job, `pipelines/plantlake/pipelines/jobs/quality.py`) rather than
approximated.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plantlake.core import clock
from plantlake.core.contracts import (
    GOLD_TELEMETRY_1M,
    GOLD_TELEMETRY_5M,
    GOLD_TWIN_STATE,
    SILVER_TELEMETRY,
    TWIN_STATUSES,
    TableRef,
)
from plantlake.core.errors import SourceError
from plantlake.pipelines.transforms.expectation_spec import (
    Condition,
    ExpectationSpec,
)
from plantlake.pipelines.transforms.expectations import Rule

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from plantlake.core.config import Settings

# mean is a sum of sorted values divided by n: for n equal values it can land one rounding step
# below their min (3 x 0.7 sums to 2.0999999999999996). 1e-6 in canonical units is far below any
# sensor's resolution and far above the rounding of a few thousand values.
MEAN_TOLERANCE = 1e-6
STREAM_ONLY = "stream-only"
SKIPPED_MISSING = "skipped: does not exist yet"

# Derived columns of the gold window checks (the rules' own are in expectation_spec).
MEAN_MINUS_MIN = ("mean_minus_min", "`mean` - `min`")
MAX_MINUS_MEAN = ("max_minus_mean", "`max` - `mean`")


def _rule_specs(rule: Rule, table: str, *, now_ms: int) -> list[ExpectationSpec]:
    return rule.params.expectation_specs(rule.name, rule.action, table, now_ms=now_ms)


def suite_spec(rules: Sequence[Rule], *, now_ms: int) -> list[ExpectationSpec]:
    """silver.telemetry's expectations: each rule as the expectation(s) that express it on a
    snapshot, or one stream-only entry; plus the uniqueness of silver's key.

    `now_ms` is the clock that event_time rules' future bound is measured from.
    """
    table = SILVER_TELEMETRY.name
    specs: list[ExpectationSpec] = []
    for rule in rules:
        specs += [
            spec
            if spec.note
            else replace(spec, note=f"{rule.name} ({rule.action}): {rule.description}")
            for spec in _rule_specs(rule, table, now_ms=now_ms)
        ]
    # Not a YAML rule: silver's dedup promises one row per key.
    specs.append(
        ExpectationSpec(
            table, "key_unique", "ExpectCompoundColumnsToBeUnique",
            {"column_list": list(SILVER_TELEMETRY.key)},
            note="key_unique: silver deduplicates readings on its key",
        )
    )  # fmt: skip
    return specs


def _not_null(table: str, columns: Iterable[str]) -> list[ExpectationSpec]:
    return [
        ExpectationSpec(table, f"{c}_not_null", "ExpectColumnValuesToNotBeNull", {"column": c})
        for c in columns
    ]


def gold_specs() -> dict[str, list[ExpectationSpec]]:
    """The gold tables' expectations by table name: keys present and unique, twin statuses
    known, window aggregates consistent (count > 0, min <= mean <= max, std >= 0)."""
    twin = GOLD_TWIN_STATE.name
    suites = {
        twin: [
            *_not_null(twin, (*GOLD_TWIN_STATE.key, "status")),
            ExpectationSpec(
                twin, "status_valid", "ExpectColumnValuesToBeInSet",
                {"column": "status", "value_set": list(TWIN_STATUSES)},
            ),
            ExpectationSpec(
                twin, "key_unique", "ExpectCompoundColumnsToBeUnique",
                {"column_list": list(GOLD_TWIN_STATE.key)},
            ),
        ]
    }  # fmt: skip
    for ref in (GOLD_TELEMETRY_1M, GOLD_TELEMETRY_5M):
        t = ref.name
        suites[t] = [
            *_not_null(t, ref.key),
            ExpectationSpec(
                t, "key_unique", "ExpectCompoundColumnsToBeUnique", {"column_list": list(ref.key)}
            ),
            ExpectationSpec(
                t, "count_positive", "ExpectColumnValuesToBeBetween",
                {"column": "count", "min_value": 1},
            ),
            ExpectationSpec(
                t, "mean_not_below_min", "ExpectColumnValuesToBeBetween",
                {"column": MEAN_MINUS_MIN[0], "min_value": -MEAN_TOLERANCE},
                derived=(MEAN_MINUS_MIN,),
            ),
            ExpectationSpec(
                t, "mean_not_above_max", "ExpectColumnValuesToBeBetween",
                {"column": MAX_MINUS_MEAN[0], "min_value": -MEAN_TOLERANCE},
                derived=(MAX_MINUS_MEAN,),
            ),
            # std is null for a window of one value; GE leaves nulls out of a between check.
            ExpectationSpec(
                t, "std_not_negative", "ExpectColumnValuesToBeBetween",
                {"column": "std", "min_value": 0},
            ),
        ]  # fmt: skip
    return suites


def lake_specs(rules: Sequence[Rule], *, now_ms: int) -> dict[TableRef, list[ExpectationSpec]]:
    """Every validated table with its expectations, silver first."""
    gold = gold_specs()
    return {
        SILVER_TELEMETRY: suite_spec(rules, now_ms=now_ms),
        **{ref: gold[ref.name] for ref in (GOLD_TWIN_STATE, GOLD_TELEMETRY_1M, GOLD_TELEMETRY_5M)},
    }


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result. `success` is None for a stream-only rule (not evaluated)."""

    rule: str
    expectation: str
    success: bool | None
    unexpected_count: int | None = None
    checked: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class TableValidation:
    table: str
    status: str  # passed, failed or skipped
    reason: str = ""
    version: int | None = None  # the Delta version validated
    outcomes: tuple[ExpectationOutcome, ...] = ()

    @property
    def evaluated(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if o.success is not None)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if o.success is False)


@dataclass(frozen=True)
class ValidationReport:
    tables: tuple[TableValidation, ...]
    docs_index: Path | None  # None when no table existed, so no Data Docs were written

    @property
    def success(self) -> bool:
        """No validated table failed (skipped tables do not count)."""
        return all(t.status != "failed" for t in self.tables)

    def table(self, name: str) -> TableValidation:
        return next(t for t in self.tables if t.table == name)


def outcome_from_result(spec: ExpectationSpec, result: Mapping[str, Any]) -> ExpectationOutcome:
    """An outcome from one GE expectation result as a dict (`ExpectationValidationResult.to_json_dict()`)."""
    detail = ""
    info = result.get("exception_info") or {}
    if info.get("raised_exception"):
        # A missing column or a type GE cannot compare: the table's schema drifted from the suite.
        detail = f"error: {info.get('exception_message')}"
    values = (result.get("result") or {}).get("partial_unexpected_list") or []
    if values and not detail:
        detail = "e.g. " + ", ".join(repr(v) for v in values[:5])
    res = result.get("result") or {}
    return ExpectationOutcome(
        rule=spec.rule,
        expectation=spec.expectation or STREAM_ONLY,
        success=bool(result.get("success")),
        unexpected_count=res.get("unexpected_count"),
        checked=res.get("element_count"),
        detail=detail,
    )


# --- I/O: Spark, Delta and Great Expectations ---------------------------------------------

DOCS_SITE = "plantlake"


def default_docs_dir(settings: Settings) -> Path:
    return settings.home / "data-docs"


def _condition(conditions: tuple[Condition, ...]):
    """GE's row condition (Condition objects; the string syntax is deprecated since GX 1.9)."""
    from great_expectations.expectations.row_conditions import Column

    terms = []
    for c in conditions:
        col = Column(c.column)
        if c.op == "in":
            terms.append(col.is_in(list(c.value)))
        elif c.op == "==":
            terms.append(col == c.value)
        elif c.op == "!=":
            terms.append(col != c.value)
        else:
            raise AssertionError(f"no GE condition for operator {c.op!r}")
    if not terms:
        return None
    return reduce(operator.and_, terms)


def _expectation(spec: ExpectationSpec, index: int):
    import great_expectations as gx

    if spec.expectation is None:  # callers evaluate only specs that name an expectation
        raise AssertionError(f"{spec.rule} has no snapshot expectation")
    cls = getattr(gx.expectations, spec.expectation)
    kwargs = dict(spec.kwargs)
    if condition := _condition(spec.row_condition):
        kwargs["row_condition"] = condition
    # meta carries the spec's index: GE's results are matched back to specs by it. The note
    # (rule, action, description) shows in Data Docs next to the expectation.
    return cls(**kwargs, notes=spec.note or None, meta={"rule": spec.rule, "spec": index})


def _context(docs_dir: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # Validation results are kept as JSON next to the site, so the Data Docs index lists every
    # run, not only this one; suites and checkpoints are rebuilt from the rules on every run.
    defaults = InMemoryStoreBackendDefaults()
    defaults.stores[defaults.validation_results_store_name]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": str(docs_dir / "results"),
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        data_docs_sites={
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        # GE's tqdm bars go to stderr per table: noise in a CLI's output.
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _snapshot(spark: SparkSession, ref: TableRef, path: str) -> tuple[DataFrame, int] | None:
    """The table at its current Delta version, or None when it does not exist yet."""
    from delta.tables import DeltaTable

    from plantlake.adapters.delta import delta_version

    try:
        if not DeltaTable.isDeltaTable(spark, path):
            return None
        version = delta_version(spark, path)
        df = spark.read.format("delta").load(path)
    except Exception as exc:  # Py4J and S3A errors: one message naming the table
        raise SourceError(
            f"Cannot read {ref.name} at {path}: {exc}",
            hint="Check that the lake is reachable (plantlake status) and the path is a Delta table.",
        ) from exc
    return df, version


def _prepare(df: DataFrame, specs: Sequence[ExpectationSpec]) -> DataFrame:
    """The snapshot with the derived columns, cut to the columns the suite reads."""
    from pyspark.sql import functions as F

    derived = dict(d for s in specs for d in s.derived)
    for name, expr in derived.items():
        df = df.withColumn(name, F.expr(expr))
    wanted = set().union(*(s.columns() for s in specs))
    # A column the table lacks is kept out here and reported by GE as that expectation's error.
    return df.select(*[c for c in df.columns if c in wanted])


def _validate_table(context, ref: TableRef, df: DataFrame, specs: Sequence[ExpectationSpec]):
    import great_expectations as gx

    # A GE suite is a set: an expectation equal to one already in it (two event_time rules'
    # not-null checks, say) is not added again, and shares that one's result.
    first: dict[tuple, int] = {}
    same_as: dict[int, int] = {}
    suite = context.suites.add(gx.ExpectationSuite(name=ref.name))
    for i, spec in enumerate(specs):
        if spec.stream_only:
            continue
        key = (spec.expectation, repr(sorted(spec.kwargs.items())), spec.row_condition)
        same_as[i] = first.setdefault(key, i)
        if same_as[i] == i:
            suite.add_expectation(_expectation(spec, i))
    # persist=False: the batch is already materialized (localCheckpoint in validate_lake).
    source = context.data_sources.add_spark(name=ref.name, persist=False)
    asset = source.add_dataframe_asset(name=ref.table)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(
            name=ref.name,
            data=asset.add_batch_definition_whole_dataframe("snapshot"),
            suite=suite,
        )
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"plantlake {ref.name}",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data docs", site_names=[DOCS_SITE])],
            result_format={"result_format": "SUMMARY"},
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": df})
    (validation,) = run.run_results.values()
    results = {r.expectation_config.meta["spec"]: r.to_json_dict() for r in validation.results}
    return [
        outcome_from_result(spec, results[same_as[i]])
        if not spec.stream_only
        else ExpectationOutcome(spec.rule, STREAM_ONLY, None, detail=spec.note)
        for i, spec in enumerate(specs)
    ]


def validate_lake(
    spark: SparkSession,
    settings: Settings,
    *,
    docs_dir: Path | None = None,
    now_ms: int | None = None,
    rules: Sequence[Rule] | None = None,
) -> ValidationReport:
    """Validate silver.telemetry and the gold tables that exist against their suites, and write
    Data Docs under `docs_dir` (default `$PLANTLAKE_HOME/data-docs`).

    A table that does not exist yet is reported as skipped. `rules` defaults to the shipped
    YAML rules; `now_ms` (default: the wall clock) bounds event times from the future.
    Raises SourceError when a table exists but cannot be read.
    """
    from plantlake.pipelines.transforms.expectations import load_rules

    # Before GE is imported: it reads the switch at import time. No network from a validation.
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    docs_dir = default_docs_dir(settings) if docs_dir is None else Path(docs_dir)
    now_ms = clock.now_ms() if now_ms is None else now_ms
    suites = lake_specs(load_rules() if rules is None else rules, now_ms=now_ms)

    context = None
    tables = []
    for ref, specs in suites.items():
        snapshot = _snapshot(spark, ref, ref.path(settings.lake))
        if snapshot is None:
            tables.append(TableValidation(ref.name, "skipped", SKIPPED_MISSING))
            continue
        df, version = snapshot
        context = context or _context(docs_dir)
        # Materialized once, so every metric GE computes reads the same rows (the reported
        # version, or a newer one if the writer committed since), and not Delta: planning a
        # query over a Delta table costs seconds here, and GE runs dozens; persisting a Delta
        # plan costs as much again (14-36 s measured on 2 cores). Spark's ContextCleaner drops
        # the checkpoint's blocks once `prepared` is garbage.
        prepared = _prepare(df, specs).localCheckpoint(eager=True)
        outcomes = _validate_table(context, ref, prepared, specs)
        status = "failed" if any(o.success is False for o in outcomes) else "passed"
        tables.append(TableValidation(ref.name, status, "", version, tuple(outcomes)))
    index = docs_dir / "index.html" if context is not None else None
    return ValidationReport(tuple(tables), index)


def format_report(report: ValidationReport) -> str:
    """The console summary: per table its expectations, passed and failed, then each failure,
    the stream-only rules and where the Data Docs are."""
    header = ("table", "expectations", "passed", "failed", "")
    rows = [header]
    for t in report.tables:
        if t.status == "skipped":
            rows.append((t.table, "-", "-", "-", t.reason))
            continue
        done = t.evaluated
        passed = sum(o.success is True for o in done)
        note = f"version {t.version}" if t.version is not None else ""
        rows.append((t.table, str(len(done)), str(passed), str(len(done) - passed), note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    for t in report.tables:
        for o in t.failed:
            count = (
                f"{o.unexpected_count} of {o.checked} rows checked"
                if o.unexpected_count is not None
                else ""
            )
            lines.append(f"FAILED {t.table} {o.rule} ({o.expectation}) {count} {o.detail}".rstrip())
    stream_only = sorted({o.rule for t in report.tables for o in t.outcomes if o.success is None})
    if stream_only:
        lines.append(
            f"stream-only (checked by the silver job, not on a snapshot): {', '.join(stream_only)}"
        )
    if report.docs_index is not None:
        lines.append(f"Data Docs: {report.docs_index}")
    return "\n".join(lines)
