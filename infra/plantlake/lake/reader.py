"""Read a lake table without a JVM: delta-rs's Arrow dataset, filtered at the scan, and DuckDB for
SQL predicates and ordering (lake reader layer).

Asset and time filters become a pyarrow dataset filter, so delta-rs's file statistics skip the
files (and Parquet statistics the row groups) that cannot match: one asset's four hours of a
large silver.telemetry reads a few files, not the table. `where` and `order_by` are DuckDB SQL
run over the filtered dataset.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaProtocolError

from plantlake.core.config import Settings
from plantlake.core.contracts import TableRef
from plantlake.core.errors import ContractError, SourceError
from plantlake.lake.arrow_schema import contract_schema, empty_table
from plantlake.lake.tables import (
    TableInfo,
    default_settings,
    info_of,
    open_table,
    table_ref,
    time_column,
)

Assets = str | Sequence[str] | None
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scan:
    """A table's rows as a filtered dataset, with the version read (None: not there yet)."""

    ref: TableRef
    dataset: ds.Dataset
    columns: list[str]
    filter: ds.Expression | None
    info: TableInfo | None

    def reader(self) -> pa.RecordBatchReader:
        return self.dataset.scanner(columns=self.columns, filter=self.filter).to_reader()


def scan(
    name: str,
    *,
    asset: Assets = None,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
    settings: Settings | None = None,
) -> Scan:
    """Open table `name` and plan its filtered read (no rows are read yet)."""
    ref = table_ref(name)
    path, table = open_table(ref, settings or default_settings())
    if table is None:
        dataset: ds.Dataset = ds.dataset(empty_table(ref))
        info = None
    else:
        try:
            dataset = table.to_pyarrow_dataset(schema=_with_contract_columns(ref, table))
        except DeltaProtocolError as exc:  # e.g. deletion vectors, which Arrow datasets lack
            raise SourceError(f"{name} at {path} uses a Delta feature this reader lacks: {exc}",
                              hint="Read it with Spark, or disable the feature on the table.") from exc  # fmt: skip
        info = info_of(ref, path, table)
    names = dataset.schema.names
    unknown = [c for c in columns or () if c not in names]
    if unknown:
        raise ContractError(f"{name} has no column(s) {unknown}.", hint=f"Its columns: {names}.")
    predicate = _predicate(ref, dataset.schema, asset, since, until)
    return Scan(ref, dataset, list(columns) if columns else names, predicate, info)


def _with_contract_columns(ref: TableRef, table: DeltaTable) -> pa.Schema:
    """The table's schema, with the contract's columns it lacks appended: a table written before
    a column joined the contract reads that column as nulls (its writer adds it on its next
    write) instead of breaking readers that ask for it."""
    schema = pa.schema(table.schema().to_arrow())
    for contract_field in contract_schema(ref):
        if contract_field.name not in schema.names:
            schema = schema.append(contract_field)
    return schema


def read_arrow(
    name: str,
    *,
    asset: Assets = None,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    limit: int | None = None,
    order_by: str | None = None,
    settings: Settings | None = None,
) -> pa.Table:
    """Rows of lake table `name` ("silver.quarantine") as an Arrow table.

    - `asset`: one asset path or several; `since` (inclusive) and `until` (exclusive) bound the
      table's time column (`time_column(name)`); a naive datetime is taken as UTC.
    - `columns`: the columns to return, in that order (default: all).
    - `where` and `order_by`: DuckDB SQL over the table's columns, e.g.
      `where="sensor = 'bearing_temp' AND quality <> 'Good'"`, `order_by="event_time_ms DESC"`.
      They are pasted into SQL: pass only text your own code wrote, never a user's input.
    - `limit`: at most this many rows (after ordering).

    A table not written yet reads as no rows with the contract's columns. Raises ContractError for
    an unknown table or column, or a filter the table cannot take; SourceError when the store
    cannot be read.
    """
    plan = scan(name, asset=asset, since=since, until=until, columns=columns, settings=settings)
    if where is None and order_by is None:
        scanner = plan.dataset.scanner(columns=plan.columns, filter=plan.filter)
        return scanner.head(limit) if limit is not None else scanner.to_table()
    return _query(plan, where=where, order_by=order_by, limit=limit)


def read_table(
    name: str,
    *,
    asset: Assets = None,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    limit: int | None = None,
    order_by: str | None = None,
    settings: Settings | None = None,
):
    """`read_arrow` as a pandas DataFrame (timestamps tz-aware in UTC)."""
    return read_arrow(
        name, asset=asset, since=since, until=until, columns=columns, where=where, limit=limit,
        order_by=order_by, settings=settings,
    ).to_pandas()  # fmt: skip


def _predicate(
    ref: TableRef,
    schema: pa.Schema,
    asset: Assets,
    since: datetime | None,
    until: datetime | None,
) -> ds.Expression | None:
    terms: list[ds.Expression] = []
    if asset is not None:
        if "asset" not in schema.names:
            raise ContractError(f"{ref.name} has no asset column to filter on.")
        assets = [asset] if isinstance(asset, str) else list(asset)
        # One equality per asset (not isin): Arrow prunes files by statistics with these.
        terms.append(functools.reduce(operator.or_, (pc.field("asset") == a for a in assets))
                     if assets else pc.scalar(False))  # fmt: skip
    if since is not None or until is not None:
        column = time_column(ref.name)
        if column is None or column not in schema.names:
            raise ContractError(f"{ref.name} has no time column; since/until cannot filter it.")
        kind = schema.field(column).type
        if since is not None:
            terms.append(pc.field(column) >= _time_value(since, kind))
        if until is not None:
            terms.append(pc.field(column) < _time_value(until, kind))
    return functools.reduce(operator.and_, terms) if terms else None


def _time_value(moment: datetime, kind: pa.DataType) -> pa.Scalar:
    """`moment` as a value of the time column's type (epoch ms or an Arrow timestamp)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if pa.types.is_integer(kind):
        return pa.scalar((aware - _EPOCH) // timedelta(milliseconds=1), type=kind)
    if pa.types.is_timestamp(kind):
        value = aware if kind.tz else aware.astimezone(UTC).replace(tzinfo=None)
        return pa.scalar(value, type=kind)
    raise ContractError(f"The time column is {kind}, neither epoch ms nor a timestamp.")


def _query(plan: Scan, *, where: str | None, order_by: str | None, limit: int | None) -> pa.Table:
    import duckdb

    filtered = plan.dataset if plan.filter is None else plan.dataset.filter(plan.filter)
    selected = ", ".join('"' + c.replace('"', '""') + '"' for c in plan.columns)
    sql = f"SELECT {selected} FROM lake_table"
    if where:
        sql += f" WHERE {where}"
    if order_by:
        sql += f" ORDER BY {order_by}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("lake_table", filtered)
        try:
            result = con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise ContractError(
                f"Reading {plan.ref.name} with where={where!r}, order_by={order_by!r} failed: {exc}"
            ) from exc
    return _as_source_types(result, plan.dataset.schema)


def _as_source_types(result: pa.Table, source: pa.Schema) -> pa.Table:
    """DuckDB's answer with the table's own Arrow types (its list field names, timestamp zones)."""
    try:
        return result.cast(pa.schema([source.field(name) for name in result.column_names]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return result
