"""The CMMS loader of the silver layer: a CMMS CSV export of failures, repairs and inspections into
silver.maintenance_events, the ground truth that ML labels come from.

Parsing is plain Python (`parse_cmms_export`); the write is an idempotent MERGE on the table's
key (asset, event, event_time_ms), so reloading the same export changes nothing and a longer
one adds only its new events. A corrected failure mode of a known event replaces the old one;
events missing from a later export are kept (an export may cover a window only).

A file with any bad row is refused whole, naming every bad line: a partial load would leave a
failure out without a trace, and a missing failure is a healthy label where the machine broke,
which poisons every training set built on it. CMMS exports are regenerated whole, so fixing
the file and loading it again costs nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from plantlake.adapters.delta import read_delta
from plantlake.adapters.spark import first_row
from plantlake.core.config import LakeSettings
from plantlake.core.contracts import MAINTENANCE_EVENT_COLUMNS, SILVER_MAINTENANCE_EVENTS
from plantlake.core.errors import ContractError, SourceError

EXPORT_COLUMNS = ("asset", "event", "failure_mode", "time_ms")
EVENT_KINDS = ("failure", "repair", "inspection")
# Epoch milliseconds outside these years are a unit mistake (seconds, microseconds), not a date.
_EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
_LATEST_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
_SHOWN_ERRORS = 10


@dataclass(frozen=True)
class CmmsRecord:
    """One valid row of a CMMS export."""

    asset: str
    event: str
    failure_mode: str | None
    event_time_ms: int


def parse_cmms_export(text: str, *, source: str) -> tuple[CmmsRecord, ...]:
    """The events of a CMMS CSV export (header asset,event,failure_mode,time_ms), in file order.

    Blank lines are skipped and a row repeated exactly counts once. Raises ContractError naming
    `source` and every bad line (missing asset, unknown event kind, a time that is not epoch
    milliseconds between 2000 and 2100, a wrong number of fields, or one key with two failure
    modes); then nothing of the file is accepted.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(name.strip() for name in reader.fieldnames or ())
    if sorted(header) != sorted(EXPORT_COLUMNS):
        raise ContractError(
            f"CMMS export {source}: the header is {list(header) or 'missing'}, expected the "
            f"columns {list(EXPORT_COLUMNS)}; nothing was loaded.",
            hint="Export the maintenance log with exactly these columns.",
        )
    reader.fieldnames = list(header)
    events: dict[tuple[str, str, int], tuple[int, CmmsRecord]] = {}
    errors: list[str] = []
    for row in reader:
        line = reader.line_num
        try:
            event = _event(row)
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        key = (event.asset, event.event, event.event_time_ms)
        first = events.setdefault(key, (line, event))
        if first[1] != event:
            errors.append(
                f"line {line}: {event.event} of {event.asset} at {event.event_time_ms} has "
                f"failure mode {event.failure_mode!r}, line {first[0]} says "
                f"{first[1].failure_mode!r}"
            )
    if errors:
        shown = "; ".join(errors[:_SHOWN_ERRORS])
        more = f"; and {len(errors) - _SHOWN_ERRORS} more" if len(errors) > _SHOWN_ERRORS else ""
        raise ContractError(
            f"CMMS export {source}: {len(errors)} bad row(s), so nothing was loaded "
            f"(a partial load would leave events out unseen): {shown}{more}.",
            hint="Fix or remove these rows and load the file again; reloading adds only new events.",
        )
    return tuple(event for _line, event in events.values())


def _event(row: dict) -> CmmsRecord:
    """One row as an event; raises ValueError saying what is wrong with it."""
    if None in row or any(v is None for v in row.values()):
        given = len(row.get(None) or ()) + sum(v is not None for k, v in row.items() if k)
        raise ValueError(f"{given} fields, the header has {len(EXPORT_COLUMNS)}")
    asset, kind, mode, time_ms = (row[c].strip() for c in EXPORT_COLUMNS)
    if not asset:
        raise ValueError("the asset is missing")
    if kind not in EVENT_KINDS:
        raise ValueError(f"event {kind!r} is not one of {', '.join(EVENT_KINDS)}")
    try:
        ms = int(time_ms)
    except ValueError:
        raise ValueError(f"time_ms {time_ms!r} is not an integer (epoch milliseconds)") from None
    if not _EARLIEST_MS <= ms < _LATEST_MS:
        raise ValueError(
            f"time_ms {ms} is not epoch milliseconds between 2000 and 2100 (seconds, perhaps?)"
        )
    return CmmsRecord(asset, kind, mode or None, ms)


def read_cmms_export(path: Path) -> tuple[CmmsRecord, ...]:
    """Read and parse a CMMS export; raises SourceError if it cannot be read, ContractError if a
    row is bad (see `parse_cmms_export`)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheet exports start with a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"CMMS export {path} cannot be read: {exc}.",
            hint="`plantlake simulate` and `plantlake ingest history` write one there; "
            "pass another with --file.",
        ) from exc
    return parse_cmms_export(text, source=str(path))


def event_rows(spark: SparkSession, events: Sequence[CmmsRecord], *,
               source_file: str) -> DataFrame:  # fmt: skip
    """Rows of silver.maintenance_events (MAINTENANCE_EVENT_COLUMNS), stamped loaded now."""
    frame = spark.createDataFrame(
        [(e.asset, e.event, e.failure_mode, e.event_time_ms) for e in events],
        "asset string, event string, failure_mode string, event_time_ms long",
    )
    stamped = {
        "event_time": F.timestamp_millis(F.col("event_time_ms")),
        "source_file": F.lit(source_file),
        "loaded_at": F.current_timestamp(),
    }
    return frame.select(
        *(stamped.get(c.name, F.col(c.name)).cast(c.type).alias(c.name)
          for c in MAINTENANCE_EVENT_COLUMNS)
    )  # fmt: skip


@dataclass(frozen=True)
class CmmsLoad:
    path: str
    read: int  # events in the file
    inserted: int
    updated: int  # known events whose failure mode changed
    total: int  # events in the table afterwards


def _create_table(spark: SparkSession, path: str) -> None:
    """Create the table with the contract's NOT NULLs if missing (SQL: a DataFrame write makes
    every column nullable; see pipelines/plantlake/pipelines/jobs/silver.py)."""
    columns = ", ".join(
        f"`{c.name}` {c.type}{'' if c.nullable else ' NOT NULL'}" for c in MAINTENANCE_EVENT_COLUMNS
    )
    comment = SILVER_MAINTENANCE_EVENTS.comment.replace("'", "\\'")
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS delta.`{path}` ({columns}) USING delta COMMENT '{comment}'"
    )


def merge_events(spark: SparkSession, rows: DataFrame, path: str) -> tuple[int, int]:
    """MERGE rows into silver.maintenance_events on its key: new events are inserted, a known
    event takes a changed failure mode, anything else is left as it is. Returns (inserted,
    updated)."""
    from delta.tables import DeltaTable

    _create_table(spark, path)
    on = SILVER_MAINTENANCE_EVENTS.merge_on()
    merged = (
        DeltaTable.forPath(spark, path).alias("t")
        .merge(rows.alias("s"), on)
        .whenMatchedUpdate(
            condition="NOT (t.failure_mode <=> s.failure_mode)",
            set={c: f"s.{c}" for c in ("failure_mode", "source_file", "loaded_at")},
        )
        .whenNotMatchedInsertAll()
        .execute()
    )  # fmt: skip
    metrics = first_row(merged)
    return int(metrics["num_inserted_rows"]), int(metrics["num_updated_rows"])


def load_cmms_export(spark: SparkSession, lake: LakeSettings, path: Path) -> CmmsLoad:
    """Load one CMMS export into silver.maintenance_events (read -> parse -> MERGE).

    Raises SourceError if the file cannot be read and ContractError if any row is bad, before
    anything is written.
    """
    events = read_cmms_export(path)
    table = SILVER_MAINTENANCE_EVENTS.path(lake)
    inserted, updated = merge_events(spark, event_rows(spark, events, source_file=str(path)), table)
    total = read_delta(spark, table).count()
    return CmmsLoad(str(path), len(events), inserted, updated, total)
