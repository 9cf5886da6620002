"""A lake with a month of plant history in gold.features and silver.maintenance_events.

Built straight from the simulated plant's historian readings (in canonical units, as silver
would hold them) through the same feature function the jobs use; the Kafka → bronze → silver
path in front of it is covered by the pipeline tests and by `make demo`.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import GOLD_FEATURES
from plantlake.pipelines.jobs.cmms import load_cmms_export
from plantlake.pipelines.jobs.gold_features import READING_COLUMNS, compute_features
from plantlake.pipelines.transforms.unit_conversion import CANONICAL_UNITS, conversion
from plantlake.simulator.cmms_export import write_cmms_export
from plantlake.simulator.historian import historian_readings
from plantlake.simulator.plant import HOUR_MS, build_plant

DAYS = 30
STEP_MS = 10 * 60_000
# Two pumps, two motors and a press: enough failures for a time split, quick to compute.
ASSETS = (
    "plant1/line1/pump-02", "plant1/line1/motor-03", "plant1/line1/pump-05",
    "plant1/line1/motor-06", "plant1/line1/press-01",
)  # fmt: skip


def canonical(value: float, unit: str | None, quantity: str) -> float:
    """The value in its quantity's canonical unit, with silver's own pint conversion."""
    scale, offset = conversion(unit or "", CANONICAL_UNITS[quantity])
    return value * scale + offset


def build_ml_lake(spark: SparkSession, settings: Settings, tmp: Path) -> Settings:
    root = f"s3a://plantlake/tests/ml-{uuid.uuid4().hex[:10]}"
    settings = settings.model_copy(
        update={"lake": LakeSettings(root=root, checkpoint_root=f"{root}/_checkpoints")}
    )
    plant = build_plant(settings.simulator.seed, start_ms=1_767_225_600_000)
    end = plant.start_ms + DAYS * 24 * HOUR_MS
    kinds = {a.path: a.kind for a in plant.assets}
    quantities = {(a.path, s.name): s.quantity for a in plant.assets for s in a.sensors}
    rows = [
        (r.asset, r.sensor, kinds[r.asset], quantities[(r.asset, r.sensor)],
         canonical(r.value, r.unit, quantities[(r.asset, r.sensor)]), r.event_time_ms,
         r.receive_time_ms)
        for r in historian_readings(plant, start_ms=plant.start_ms, end_ms=end, step_ms=STEP_MS,
                                    assets=ASSETS)
        if r.quality == "Good" and r.value is not None
    ]  # fmt: skip
    readings = spark.createDataFrame(
        pd.DataFrame(
            rows,
            columns=list(READING_COLUMNS),
        )  # fmt: skip
    ).withColumn("emit_from_ms", F.lit(None).cast("long"))
    export = tmp / "cmms_export.csv"
    write_cmms_export(plant, end, export)
    load_cmms_export(spark, settings.lake, export)
    events = spark.read.format("delta").load(f"{root}/silver/maintenance_events")
    features = compute_features(readings, events, step_ms=5 * 60_000)
    features.write.format("delta").save(GOLD_FEATURES.path(settings.lake))
    return settings
