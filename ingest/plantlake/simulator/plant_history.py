"""A simulated plant's history as gold.features and silver.maintenance_events would hold it,
computed without the lake (simulator layer).

`plantlake models evaluate` judges the models on several plant seeds. Sending each through
Kafka, bronze, silver and gold takes minutes a seed, so this runs the same code in-process:
the historian's readings and edge window features (`historian`), silver's rules through the
hot path's plain-Python evaluator (`reading_checks`, which tests hold equal to silver's Spark
evaluator) with the registry and unit table the simulator imports into the lake, Good readings
only, and gold's one feature code path (`asset_features`). The events are the CMMS export.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pandas as pd

from plantlake.core.contracts import EDGE_FEATURES_IN_GOLD
from plantlake.core.records import Quality, Reading
from plantlake.ingest.filters import FilterConfig, window_feature_names
from plantlake.pipelines.transforms.expectations import load_rules
from plantlake.pipelines.transforms.features import MAINTENANCE_KINDS, asset_features
from plantlake.pipelines.transforms.reading_checks import (
    ReadingChecker,
    SensorChecks,
    build_reference,
    prepare,
)
from plantlake.pipelines.transforms.unit_conversion import unit_rows
from plantlake.simulator.historian import LOOKAHEAD_MS, historian_features, historian_readings
from plantlake.simulator.plant import DAY_MS, Plant, build_plant, maintenance_log
from plantlake.simulator.registry import plant_registry_entries

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: every seed's plant starts then


@dataclass(frozen=True)
class PlantHistory:
    seed: int
    features: pd.DataFrame  # gold.features rows (OUTPUT_COLUMNS of the feature code)
    events: pd.DataFrame  # asset, event, failure_mode, event_time_ms (the CMMS export)
    checked: int  # readings through silver's rules
    held: int  # of those, kept out of the features (a blocking rule, or not Good)


def _used(reading: Reading) -> bool:
    """Whether gold's features read it (as `gold_features.feature_readings` selects)."""
    _, dot, feature = reading.sensor.partition(".")
    return not dot or feature in EDGE_FEATURES_IN_GOLD


def silver_readings(
    plant: Plant, readings: Iterator[Reading], window_features: Sequence[str]
) -> tuple[pd.DataFrame, int, int]:
    """The readings features use, as silver keeps them: registry joined (with the edge's
    `window_features` registered), canonical units, every blocking rule passed, quality Good, a
    value. Returns (rows, checked, held)."""
    entries = plant_registry_entries(plant, window_features)
    reference = build_reference(unit_rows(), (e.model_dump() for e in entries))
    checker = ReadingChecker(load_rules())
    carried: dict[tuple[str, str], SensorChecks] = defaultdict(SensorChecks)
    rows: list[tuple] = []
    checked = held = 0
    for reading in readings:
        if not _used(reading):
            continue
        checked += 1
        r = prepare(reading.to_record(), reference)
        failed = checker.failed_rules(
            r, carried[(r.asset, r.sensor)], now_ms=reading.receive_time_ms
        )
        if checker.blocked(failed) or r.quality != Quality.GOOD.value or r.value is None:
            held += 1
            continue
        rows.append((r.asset, r.sensor, r.asset_class, r.quantity, r.value, r.event_time_ms,
                     r.receive_time_ms))  # fmt: skip
    columns = ["asset", "sensor", "asset_class", "quantity", "value", "event_time_ms", "arrived_ms"]
    return pd.DataFrame(rows, columns=columns), checked, held


def plant_history(
    seed: int,
    filters: FilterConfig,
    *,
    days: float,
    step_ms: int,
    feature_step_ms: int,
) -> PlantHistory:
    """`days` of the plant of `seed` from START_MS, sampled every `step_ms` as the historian
    archives it, featured on a `feature_step_ms` grid."""
    end_ms = START_MS + int(days * DAY_MS)
    plant = build_plant(seed, start_ms=START_MS, horizon_ms=end_ms - START_MS + LOOKAHEAD_MS)
    readings = chain(
        historian_readings(plant, start_ms=START_MS, end_ms=end_ms, step_ms=step_ms),
        historian_features(plant, filters, start_ms=START_MS, end_ms=end_ms, step_ms=step_ms),
    )
    silver, checked, held = silver_readings(plant, readings, window_feature_names(filters))
    events = pd.DataFrame(
        [(e.asset, e.kind, e.failure_mode, e.time_ms) for e in maintenance_log(plant, end_ms)],
        columns=["asset", "event", "failure_mode", "event_time_ms"],
    )
    done = events[events["event"].isin(MAINTENANCE_KINDS)]
    features = [
        asset_features(
            rows.sort_values("event_time_ms"),
            maintenance_ms=done[done["asset"] == asset]["event_time_ms"].to_numpy(np.int64),
            step_ms=feature_step_ms,
        )
        for asset, rows in silver.groupby("asset")
    ]
    return PlantHistory(seed, pd.concat(features, ignore_index=True), events, checked, held)
