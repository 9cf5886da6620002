"""The asset registry of the silver layer: reference rows from the plant, and the as-of join."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from plantlake.core.contracts import REFERENCE_ASSET_REGISTRY
from plantlake.core.plant import Asset, Plant

REGISTRY_SCHEMA = REFERENCE_ASSET_REGISTRY.ddl()
# Open intervals (valid_to null) end here in the join; far beyond any reading.
_FAR_FUTURE = "9999-12-31 00:00:00"
# Registry rows start this long before the plant's start, so a backfill still finds them.
COMMISSIONED_BEFORE = timedelta(days=365)


@dataclass(frozen=True)
class Remount:
    """A sensor moved from one machine to another at `after` past the plant's start.

    Until then the registry classifies the sensor (and its window features) as `before`,
    afterwards as the asset's own kind: two rows with adjacent validity intervals.
    """

    asset: str
    sensor: str
    before: str
    after: timedelta


# The deliberate validity change: pump-02's accelerometer sat on its drive motor's bearing
# housing for the first week and was then remounted on the pump casing.
REMOUNTS: tuple[Remount, ...] = (
    Remount("plant1/line1/pump-02", "vibration", before="motor", after=timedelta(days=7)),
)


def _feature_quantity(feature: str) -> str:
    """Quantity of an edge window feature: rms/peak in mm/s, crest a ratio, bands an energy."""
    if feature == "crest":
        return "ratio"
    if feature.startswith("band_"):
        return "energy"
    return "vibration"


def _signals(asset: Asset, features: Sequence[str]) -> list[tuple[str, str]]:
    """(sensor, quantity) of every signal an asset emits, window features included."""
    signals = []
    for sensor in asset.sensors:
        # High-rate sensors reach the lake as window features, and raw during a passthrough.
        signals.append((sensor.name, sensor.quantity))
        if sensor.rate_hz:
            signals += [(f"{sensor.name}.{f}", _feature_quantity(f)) for f in features]
    return signals


def registry_rows(plant: Plant, features: Sequence[str]) -> list[dict]:
    """Rows of reference.asset_registry for the simulated plant (see REMOUNTS for the change).

    `features` are the window features the edge computes for each high-rate sensor
    (`plantlake.ingest.filters.window_feature_names`). Per (asset, sensor) the validity
    intervals are adjacent and never overlap; valid_to null = open.
    """
    start = datetime.fromtimestamp(plant.start_ms / 1000, tz=UTC)
    commissioned = start - COMMISSIONED_BEFORE
    remounts = {(r.asset, r.sensor): r for r in REMOUNTS}
    rows = []
    for asset in plant.assets:
        for sensor, quantity in _signals(asset, features):
            row = {
                "asset": asset.path, "sensor": sensor, "asset_class": asset.kind,
                "quantity": quantity, "site": asset.site, "line": asset.line,
                "valid_from": commissioned, "valid_to": None,
            }  # fmt: skip
            remount = remounts.get((asset.path, sensor.split(".")[0]))
            if remount is None:
                rows.append(row)
                continue
            moved = start + remount.after
            rows.append({**row, "asset_class": remount.before, "valid_to": moved})
            rows.append({**row, "valid_from": moved})
    return rows


def join_registry(readings: DataFrame, *, registry: DataFrame) -> DataFrame:
    """Readings with `asset_class` and `registry_quantity` from the registry row valid at event time.

    Grain in and out: one reading. A row is valid when valid_from <= event_time < valid_to (null
    valid_to = open), so adjacent intervals match a reading at the boundary once, with the later
    row. An unknown asset or sensor keeps its reading with both columns null.
    """
    ref = registry.select(
        F.col("asset").alias("_r_asset"),
        F.col("sensor").alias("_r_sensor"),
        F.col("asset_class"),
        F.col("quantity").alias("registry_quantity"),
        F.col("valid_from").alias("_r_from"),
        F.coalesce(F.col("valid_to"), F.to_timestamp(F.lit(_FAR_FUTURE))).alias("_r_to"),
    )
    condition = (
        (F.col("asset") == F.col("_r_asset"))
        & (F.col("sensor") == F.col("_r_sensor"))
        & (F.col("event_time") >= F.col("_r_from"))
        & (F.col("event_time") < F.col("_r_to"))
    )
    return readings.join(F.broadcast(ref), condition, "left").drop(
        "_r_asset", "_r_sensor", "_r_from", "_r_to"
    )
