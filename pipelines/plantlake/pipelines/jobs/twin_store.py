"""Adapter between the hot path and the lake through delta-rs: read the reference tables, read and
write gold.twin_state (the hot path is that table's only writer; no JVM involved)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping

import pyarrow as pa
from arro3.core import Array as Arro3Array
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from deltalake.exceptions import TableNotFoundError

from plantlake.core.config import delta_uri
from plantlake.core.contracts import TWIN_STATE_COLUMNS
from plantlake.core.errors import SinkError, SourceError
from plantlake.pipelines.transforms.reading_checks import (
    Reference,
    SensorChecks,
    build_reference,
)
from plantlake.pipelines.transforms.twin_fold import TwinRow

_ARROW = {
    "string": pa.string(),
    "double": pa.float64(),
    "long": pa.int64(),
    "int": pa.int32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
TWIN_SCHEMA = pa.schema(
    [pa.field(c.name, _ARROW[c.type], nullable=c.nullable) for c in TWIN_STATE_COLUMNS]
)
# Each commit replaces the whole share of the twin, so old files pile up fast: keep the log
# and the replaced files for `retention_hours` only (see HotPathSettings).
_TIMES = {"event_time": "event_time_ms", "receive_time": "receive_time_ms",
          "status_since": "status_since_ms", "status_as_of": "status_as_of_ms"}  # fmt: skip


def open_table(path: str, options: Mapping[str, str]) -> DeltaTable | None:
    try:
        return DeltaTable(delta_uri(path), storage_options=dict(options))
    except TableNotFoundError:
        return None


def read_reference(units_path: str, registry_path: str, options: Mapping[str, str]) -> Reference:
    """reference.units and reference.asset_registry as lookups; SourceError when missing."""
    tables = {}
    for name, path in (
        ("reference.units", units_path),
        ("reference.asset_registry", registry_path),
    ):
        table = open_table(path, options)
        if table is None:
            raise SourceError(
                f"{name} is not a Delta table at {path}.",
                hint="Run `plantlake reference load` first: the hot path reads it.",
            )
        tables[name] = _select(table).to_pylist()
    return build_reference(tables["reference.units"], tables["reference.asset_registry"])


def _select(table: DeltaTable, where: str | None = None) -> pa.Table:
    """The table's rows through delta-rs's own query engine, timestamps as epoch milliseconds.

    Why not `to_pyarrow_table`: it goes through pyarrow.dataset, whose import pulls in pandas
    (about 2 s), and so does turning zoned timestamps into Python datetimes. The hot path reads
    on every start and assignment, where those seconds are seconds of a stale twin.
    """
    columns = ", ".join(
        f'CAST("{f.name}" AS BIGINT) / 1000 AS "{f.name}"' if pa.types.is_timestamp(f.type)
        else f'"{f.name}"'
        for f in pa.schema(table.schema().to_arrow())
    )  # fmt: skip
    query = f"SELECT {columns} FROM t" + (f" WHERE {where}" if where else "")
    stream = QueryBuilder().register("t", table).execute(query)
    return pa.RecordBatchReader.from_stream(stream).read_all()


def read_twin(
    path: str, options: Mapping[str, str], *, partitions: Collection[int] | None = None
) -> tuple[list[TwinRow], dict[tuple[str, str], SensorChecks]]:
    """The twin rows (of `partitions`, default all) and each row's carried rule state."""
    table = open_table(path, options)
    if table is None:
        return [], {}
    where = None if partitions is None else f"kafka_partition IN ({_listed(partitions)})"
    rows, checks = [], {}
    for record in _select(table, where).to_pylist():
        for column, ms in _TIMES.items():
            record[ms] = record.pop(column)
        state = record.pop("rule_state")
        row = TwinRow(**record)
        rows.append(row)
        if state:
            checks[(row.asset, row.sensor)] = SensorChecks.from_json(json.loads(state))
    return rows, checks


def twin_batch(rows: Iterable[TwinRow], checks: Mapping[tuple[str, str], SensorChecks]) -> pa.Table:
    """Twin rows as an Arrow table of TWIN_SCHEMA."""
    columns: dict[str, list] = {field.name: [] for field in TWIN_SCHEMA}
    for row in rows:
        for name in columns:
            if name == "rule_state":
                state = checks.get((row.asset, row.sensor))
                columns[name].append(None if state is None else json.dumps(state.to_json()))
            elif name in _TIMES:
                columns[name].append(getattr(row, _TIMES[name]) * 1000)  # epoch microseconds
            else:
                columns[name].append(getattr(row, name))
    return pa.Table.from_arrays(
        [_arrow_array(columns[f.name], f.type) for f in TWIN_SCHEMA], schema=TWIN_SCHEMA
    )


def _arrow_array(values: list, kind: pa.DataType) -> pa.Array:
    """A pyarrow array of Python values, built by arro3 (delta-rs's own Arrow binding).

    Why not `pa.array`: its first call imports pandas (about 2 s here) to ask whether the values
    are a pandas object, and the hot path's first commit after a restart would wait for it.
    """
    if pa.types.is_timestamp(kind):  # arro3 builds no timestamps from Python: micros, relabelled
        return pa.array(Arro3Array(values, type=pa.int64())).view(kind)
    return pa.array(Arro3Array(values, type=kind))


def write_twin_share(
    path: str,
    options: Mapping[str, str],
    batch: pa.Table,
    *,
    partitions: Collection[int],
    retention_hours: float,
) -> int:
    """Replace the rows of `partitions` in gold.twin_state with `batch`; the new table version.

    Each hot-path member owns the Kafka partitions the consumer group gave it, and replaces only
    their rows, so members never overwrite each other. The first write creates the table.
    """
    uri = delta_uri(path)
    table = open_table(path, options)
    try:
        if table is None:
            hours = f"interval {retention_hours * 60:.0f} minutes"
            write_deltalake(
                uri, batch, mode="overwrite", storage_options=dict(options),
                name="twin_state", description="Latest good value per asset and sensor, liveness.",
                configuration={"delta.logRetentionDuration": hours,
                               "delta.deletedFileRetentionDuration": hours},
            )  # fmt: skip
            return 0
        write_deltalake(table, batch, mode="overwrite",
                        predicate=f"kafka_partition IN ({_listed(partitions)})")  # fmt: skip
        return table.version()
    except OSError as exc:  # delta-rs raises its storage errors as OSError subclasses
        raise SinkError(f"gold.twin_state: commit to {path} failed: {exc}") from exc


def _listed(partitions: Collection[int]) -> str:
    return ", ".join(str(int(p)) for p in sorted(partitions))


def vacuum_twin(path: str, options: Mapping[str, str], *, retention_hours: float) -> int:
    """Remove twin files replaced more than `retention_hours` ago; how many were removed."""
    table = open_table(path, options)
    if table is None:
        return 0
    removed = table.vacuum(
        retention_hours=max(int(retention_hours), 0),
        dry_run=False,
        enforce_retention_duration=False,
    )
    table.cleanup_metadata()
    return len(removed)
