"""Great Expectations as plantlake runs it: an ephemeral context whose Data Docs and results are
files under one folder, and a suite of `ExpectationSpec`s run over a Spark DataFrame.

GX reads its analytics switch when it is first imported: every function here turns it off
before importing GX, so a validation never calls home.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping, Sequence
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plantlake.core.expectation_spec import Condition, ExpectationSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DOCS_SITE = "plantlake"


def _gx():
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx

    return gx


def _condition(conditions: tuple[Condition, ...]):
    """GE's row condition (Condition objects; the string syntax is deprecated since GX 1.9)."""
    _gx()
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
    gx = _gx()

    if spec.expectation is None:  # callers evaluate only specs that name an expectation
        raise AssertionError(f"{spec.rule} has no snapshot expectation")
    cls = getattr(gx.expectations, spec.expectation)
    kwargs = dict(spec.kwargs)
    if condition := _condition(spec.row_condition):
        kwargs["row_condition"] = condition
    # meta carries the spec's index: GE's results are matched back to specs by it. The note
    # (rule, action, description) shows in Data Docs next to the expectation.
    return cls(**kwargs, notes=spec.note or None, meta={"rule": spec.rule, "spec": index})


def gx_context(docs_dir: Path):
    """An ephemeral GX context that writes Data Docs (and keeps results) under `docs_dir`."""
    gx = _gx()
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


def run_suite(
    context, name: str, table: str, df: DataFrame, specs: Sequence[ExpectationSpec]
) -> list[Mapping[str, Any] | None]:
    """Run `specs` (one suite, `name`) over `df` and update the Data Docs; per spec, GX's
    result as a dict, or None for a stream-only spec."""
    gx = _gx()

    # A GE suite is a set: an expectation equal to one already in it (two event_time rules'
    # not-null checks, say) is not added again, and shares that one's result.
    first: dict[tuple, int] = {}
    same_as: dict[int, int] = {}
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for i, spec in enumerate(specs):
        if spec.stream_only:
            continue
        key = (spec.expectation, repr(sorted(spec.kwargs.items())), spec.row_condition)
        same_as[i] = first.setdefault(key, i)
        if same_as[i] == i:
            suite.add_expectation(_expectation(spec, i))
    # persist=False: the batch is already materialized (localCheckpoint in validate_lake).
    source = context.data_sources.add_spark(name=name, persist=False)
    asset = source.add_dataframe_asset(name=table)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(
            name=name,
            data=asset.add_batch_definition_whole_dataframe("snapshot"),
            suite=suite,
        )
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"plantlake {name}",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data docs", site_names=[DOCS_SITE])],
            result_format={"result_format": "SUMMARY"},
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": df})
    (validation,) = run.run_results.values()
    results = {r.expectation_config.meta["spec"]: r.to_json_dict() for r in validation.results}
    return [None if spec.stream_only else results[same_as[i]] for i, spec in enumerate(specs)]
