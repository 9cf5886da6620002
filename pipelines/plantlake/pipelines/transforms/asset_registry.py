"""The asset registry of the silver layer: the as-of join of readings to the registry row valid
at their event time (the rows themselves come from a site's registry file, or the simulator's)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from plantlake.core.contracts import REFERENCE_ASSET_REGISTRY

REGISTRY_SCHEMA = REFERENCE_ASSET_REGISTRY.ddl()
# Open intervals (valid_to null) end here in the join; far beyond any reading.
_FAR_FUTURE = "9999-12-31 00:00:00"


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
