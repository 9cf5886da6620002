"""Issue 9: the tables jobs write have exactly the columns the lake contract states
(`TableRef.columns` in plantlake.core.contracts), in order and with Spark's type names."""

from __future__ import annotations

from collections.abc import Iterable

from plantlake.adapters.delta import read_delta
from plantlake.core.config import LakeSettings
from plantlake.core.contracts import TABLES


def assert_tables_match_contract(spark, lake: LakeSettings, tables: Iterable[str]) -> None:
    """Each of `tables` (names, e.g. "silver.telemetry") exists in `lake` with the contract's
    columns."""
    refs = {ref.name: ref for ref in TABLES}
    wrong = {}
    for name in tables:
        ref = refs[name]
        schema = read_delta(spark, ref.path(lake)).schema
        found = tuple(f"{f.name} {f.dataType.simpleString()}" for f in schema.fields)
        if found != ref.columns:
            wrong[name] = {
                "missing": [c for c in ref.columns if c not in found],
                "unexpected": [c for c in found if c not in ref.columns],
                "order": found if set(found) == set(ref.columns) else "",
            }
    assert not wrong, wrong
