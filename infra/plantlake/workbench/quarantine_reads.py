"""What the quarantine pages read from the lake (workbench layer): the filtered queue, one
reading, its decision history, the sensor's readings around it, units and rules."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from plantlake.core.config import Settings
from plantlake.lake import read_arrow
from plantlake.pipelines.transforms.expectations import UNIT_RULE, Rule, load_rules
from plantlake.workbench.quarantine_views import (
    QueueFilter,
    QueueRow,
    UnitConversion,
    queue_row,
    queue_rows,
    reading_key,
    to_canonical,
    unit_table,
)
from plantlake.workbench.review_store import ReadingKey, ReviewStore

QUARANTINE, REVIEWS = "silver.quarantine", "silver.quarantine_reviews"
TELEMETRY, UNITS = "silver.telemetry", "reference.units"
WINDOW = dt.timedelta(hours=2)


def sql_text(value: str) -> str:
    """A string as a DuckDB SQL literal (quotes doubled), for the `where` of `read_arrow`."""
    return "'" + value.replace("'", "''") + "'"


def _key_where(key: ReadingKey) -> str:
    return (
        f"kafka_topic = {sql_text(key.kafka_topic)} AND kafka_partition = {int(key.kafka_partition)}"
        f" AND kafka_offset = {int(key.kafka_offset)}"
    )


def load_queue(flt: QueueFilter, *, settings: Settings, store: ReviewStore) -> list[QueueRow]:
    """Every quarantined reading in the filter (all pages), newest first, with its latest
    decision. Asset, sensor and time narrow the lake scan; rule, line and review status need
    the rows (status comes from the app's own decisions, which silver may not have yet)."""
    where = f"sensor = {sql_text(flt.sensor)}" if flt.sensor else None
    records = read_arrow(
        QUARANTINE, asset=flt.asset or None, since=flt.since, until=flt.until, where=where,
        settings=settings,
    ).to_pylist()  # fmt: skip
    latest = store.latest([reading_key(r) for r in records]) if records else {}
    return [row for row in queue_rows(records, latest) if flt.matches(row)]


def load_reading(key: ReadingKey, *, settings: Settings, store: ReviewStore) -> QueueRow | None:
    """One quarantined reading with its latest decision; None if silver.quarantine lacks it."""
    records = read_arrow(QUARANTINE, where=_key_where(key), settings=settings).to_pylist()
    if not records:
        return None
    return queue_row(records[0], store.latest([key]).get(key))


def decision_history(key: ReadingKey, *, settings: Settings) -> list[dict]:
    """Every decision on the reading, oldest first."""
    table = read_arrow(REVIEWS, where=_key_where(key), order_by="decided_at", settings=settings)
    return table.to_pylist()


def bulk_recorded(bulk_id: str, *, settings: Settings) -> int:
    """How many decisions of bulk `bulk_id` (hex, checked by the caller) are stored."""
    where = f"starts_with(decision_id, {sql_text(bulk_id + '-')})"
    return read_arrow(REVIEWS, columns=["decision_id"], where=where, settings=settings).num_rows


def units(*, settings: Settings) -> dict[str, UnitConversion]:
    """reference.units by device unit (empty before `plantlake reference load`: then no value
    is converted, as silver could not have converted any either)."""
    return unit_table(read_arrow(UNITS, settings=settings).to_pylist())


@cache
def rules() -> dict[str, Rule]:
    """The expectation rules by name (read once: they change only with a new silver job)."""
    return {rule.name: rule for rule in load_rules()}


def rule_names() -> list[str]:
    """Every rule a reading can fail: the rule files' and silver's own unit check."""
    return sorted([*rules(), UNIT_RULE])


@dataclass(frozen=True)
class SensorWindow:
    """A sensor's readings around one reading, in `unit` (canonical): good ones from silver,
    and the other quarantined ones that could be converted (`unconverted` counts the rest)."""

    unit: str
    telemetry: list[tuple[int, float]]
    quarantined: list[tuple[int, float]]
    reading: tuple[int, float] | None
    unconverted: int


def sensor_window(
    row: QueueRow, *, settings: Settings, table: Mapping[str, UnitConversion]
) -> SensorWindow:
    """silver.telemetry and silver.quarantine of the reading's sensor, ±2 h around it."""
    since, until = row.event_time - WINDOW, row.event_time + WINDOW
    where = f"sensor = {sql_text(row.sensor)}"
    good = read_arrow(
        TELEMETRY, asset=row.asset, since=since, until=until, where=where,
        columns=["event_time_ms", "value", "unit"], order_by="event_time_ms", settings=settings,
    ).to_pylist()  # fmt: skip
    held = read_arrow(
        QUARANTINE, asset=row.asset, since=since, until=until, where=where,
        columns=["event_time_ms", "value", "unit", "kafka_topic", "kafka_partition", "kafka_offset"],
        settings=settings,
    ).to_pylist()  # fmt: skip
    own = to_canonical(row.value, row.unit, table)
    units_seen = [r["unit"] for r in good if r["unit"] is not None]
    unit = units_seen[-1] if units_seen else (own[1] if own else "")
    telemetry = [(int(r["event_time_ms"]), float(r["value"])) for r in good
                 if r["value"] is not None and not math.isnan(r["value"]) and r["unit"] == unit]  # fmt: skip
    quarantined, unconverted = [], 0
    for r in held:
        if reading_key(r) == row.key:
            continue
        value = None if r["value"] is None or math.isnan(r["value"]) else r["value"]
        converted = to_canonical(value, r["unit"], table)
        if converted is None or converted[1] != unit:
            unconverted += 1
        else:
            quarantined.append((int(r["event_time_ms"]), converted[0]))
    reading = (row.event_time_ms, own[0]) if own is not None and own[1] == unit else None
    return SensorWindow(unit, telemetry, quarantined, reading, unconverted)
