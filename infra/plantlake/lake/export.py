"""A lake table, or one asset's time range of it, to a CSV or Parquet file for spreadsheets and
other tools (lake reader layer).

Batches stream from the scan to the file, so an export of any size runs in bounded memory. CSV
is what a spreadsheet opens: a header row, timestamps as ISO 8601 in UTC to the millisecond
(`2026-11-27T15:04:05.123Z`, fixed width, so they also sort as text), nested values (failed
rules, warning lists) as JSON and binary as base64. Parquet keeps the lake's own types.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from plantlake.core.config import Settings
from plantlake.core.errors import ContractError, SinkError
from plantlake.lake.reader import scan
from plantlake.lake.tables import table_ref

FORMATS = ("csv", "parquet")
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"  # %S of a millisecond timestamp carries ".fff"


@dataclass(frozen=True)
class ExportResult:
    rows: int
    path: Path
    # The table version exported; None: the table is not there yet (the file has no rows).
    version: int | None = None


def export_table(
    name: str,
    out: Path,
    *,
    fmt: str,
    asset: str | Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    overwrite: bool = False,
    settings: Settings | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write table `name` (filtered as `read_table` filters) to `out` as CSV or Parquet.

    The file appears whole or not at all (written aside, then renamed). `progress` is called
    with the rows written so far after each batch. Raises SinkError if `out` exists and
    `overwrite` is false, ContractError for an unknown table, format or filter.
    """
    if fmt not in FORMATS:
        raise ContractError(f"Unknown export format {fmt!r}; use one of {list(FORMATS)}.")
    table_ref(name)  # an unknown table is the first thing to say
    out = Path(out)
    if out.exists() and not overwrite:
        raise SinkError(f"{out} exists.", hint="Pass --force (overwrite=True) to replace it.")
    plan = scan(name, asset=asset, since=since, until=until, settings=settings)
    reader = plan.reader()
    aside = out.with_name(f".{out.name}.{os.getpid()}.part")
    rows = 0
    try:
        with _writer(fmt, aside, reader.schema) as write:
            for batch in reader:
                write(batch)
                rows += batch.num_rows
                if progress is not None:
                    progress(rows)
        aside.replace(out)
    finally:
        aside.unlink(missing_ok=True)
    return ExportResult(rows, out, plan.info.version if plan.info else None)


class _writer:
    """A context that writes record batches of `schema` to `path` in `fmt`."""

    def __init__(self, fmt: str, path: Path, schema: pa.Schema):
        self.fmt, self.path, self.schema = fmt, path, schema
        self._file: pq.ParquetWriter | pa_csv.CSVWriter | None = None

    def __enter__(self) -> Callable[[pa.RecordBatch], None]:
        if self.fmt == "parquet":
            self._file = pq.ParquetWriter(self.path, self.schema)
            return self._file.write_batch
        self._file = pa_csv.CSVWriter(self.path, spreadsheet_schema(self.schema))
        return lambda batch: self._file.write_batch(for_spreadsheet(batch))  # type: ignore[union-attr]

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()


def _is_nested(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_struct(kind) or pa.types.is_map(kind)


def _as_text(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) or _is_nested(kind) or pa.types.is_binary(kind)


def spreadsheet_schema(schema: pa.Schema) -> pa.Schema:
    """The CSV's columns: the table's, with times, nested and binary values as text."""
    return pa.schema([pa.field(f.name, pa.string()) if _as_text(f.type) else f for f in schema])


def for_spreadsheet(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with timestamps as ISO 8601 UTC text (milliseconds), nested values as JSON and
    binary as base64; other columns as they are."""
    columns = [
        _column_text(column) if _as_text(column.type) else column for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, schema=spreadsheet_schema(batch.schema))


def _column_text(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_timestamp(kind):
        millis = column.cast(pa.timestamp("ms", tz=kind.tz or "UTC"), safe=False)
        return pc.strftime(millis, format=ISO_UTC)
    if pa.types.is_binary(kind):
        return pa.array(
            [None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()],
            pa.string(),
        )
    # Maps come out of Arrow as lists of (key, value) pairs; JSON objects read better.
    values = column.to_pylist()
    if pa.types.is_map(kind):
        values = [None if v is None else dict(v) for v in values]
    return pa.array(
        [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in values],
        pa.string(),
    )
