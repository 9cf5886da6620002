"""Lake tables by contract name, opened with delta-rs: where each is, its version and commit
time, and the column a time range filters on (lake reader layer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from plantlake.core.config import Settings, delta_uri
from plantlake.core.contracts import TABLES, TableRef
from plantlake.core.errors import ContractError, SourceError
from plantlake.services.minio import delta_rs_options

# The column `since`/`until` filter on: the time of what a row records (a reading's source
# time, a window's start, a decision's time). Epoch-millisecond columns are preferred where a
# table has both, as the liquid clustering keys (and so file statistics) are on them. None: the
# table is state or reference data, with no time of its own.
TIME_COLUMNS: dict[str, str | None] = {
    "bronze.telemetry": "event_time_ms",
    "bronze.edge_features": "event_time_ms",
    "bronze.dead_letter": "kafka_timestamp",
    "bronze.lifecycle": "event_time_ms",
    "reference.asset_registry": None,
    "reference.units": None,
    "silver.telemetry": "event_time_ms",
    "silver.quarantine": "event_time_ms",
    "silver.quarantine_reviews": "decided_at",
    "silver.dq_metrics": "batch_time",
    "silver.rule_state": None,
    "silver.maintenance_events": "event_time_ms",
    "gold.twin_state": "event_time_ms",
    "gold.watermarks": None,
    "gold.open_windows": "window_start_ms",
    "gold.telemetry_1m": "window_start_ms",
    "gold.telemetry_5m": "window_start_ms",
    "gold.late_data": "event_time_ms",
    "gold.features": "feature_time_ms",
    "gold.training_sets": "label_time_ms",
    "gold.predictions": "feature_time_ms",
    "gold.work_orders": "opened_at",
    "gold.work_order_feedback": "decided_at_ms",
}


@dataclass(frozen=True)
class TableInfo:
    """Which version of a table was read, and when that version was committed (UTC)."""

    name: str
    path: str
    version: int
    committed_at: datetime


def table_ref(name: str) -> TableRef:
    """The contract of table `name` ("silver.quarantine"); ContractError naming the known ones."""
    for ref in TABLES:
        if ref.name == name:
            return ref
    known = ", ".join(ref.name for ref in TABLES)
    raise ContractError(f"Unknown lake table {name!r}.", hint=f"Known tables: {known}.")


def time_column(name: str) -> str | None:
    """The column `since`/`until` filter table `name` on (None: it has no time of its own)."""
    return TIME_COLUMNS.get(table_ref(name).name)


def open_table(ref: TableRef, settings: Settings) -> tuple[str, DeltaTable | None]:
    """The table's path and its latest version through delta-rs; None when it is not there yet.

    Raises SourceError when the store cannot be read (MinIO down, wrong keys).
    """
    path = ref.path(settings.lake)
    uri = delta_uri(path)
    options = delta_rs_options(settings) if uri.startswith("s3://") else None
    try:
        return path, DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return path, None
    except (DeltaError, OSError) as exc:
        raise SourceError(
            f"Cannot read {ref.name} at {path}: {exc}",
            hint="Check that the lake's store is up (`plantlake status`) and its keys are right.",
        ) from exc


def info_of(ref: TableRef, path: str, table: DeltaTable) -> TableInfo:
    """The version `table` holds and when it was committed."""
    commits = table.history(1)
    # Spark and delta-rs both stamp every commit; an unstamped one reads as the epoch.
    stamp = commits[0].get("timestamp", 0) if commits else 0
    return TableInfo(ref.name, path, table.version(), datetime.fromtimestamp(stamp / 1000, tz=UTC))


def table_info(name: str, *, settings: Settings | None = None) -> TableInfo | None:
    """Version and commit time of table `name`; None when it is not there yet."""
    ref = table_ref(name)
    path, table = open_table(ref, settings or default_settings())
    return None if table is None else info_of(ref, path, table)


def default_settings() -> Settings:
    from plantlake.core.config import load_settings

    return load_settings()
