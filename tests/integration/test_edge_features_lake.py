"""The DAQ's band energies, from the edge to the models' input: `plantlake ingest daq`'s window
features (RMS, peak, crest, FFT bands of kHz vibration) reach Kafka's edge_features topic, land
in bronze.edge_features, are refined into silver.telemetry, and fill gold.features' columns."""

import threading
import time

import pytest
from rich.console import Console

from plantlake.app.edge_sources import make_source
from plantlake.core.contracts import (
    BRONZE_EDGE_FEATURES,
    EDGE_FEATURES_IN_GOLD,
    GOLD_FEATURES,
    SILVER_TELEMETRY,
)
from plantlake.ingest.filters import default_window_features
from plantlake.ingest.runner import run_edge
from plantlake.pipelines.jobs import bronze, gold_features, silver

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def _run_daq(settings, seconds: float) -> None:
    """The DAQ edge process's source and buffer, in this process, for `seconds`."""
    stop = threading.Event()
    edge = threading.Thread(
        target=run_edge,
        args=(settings, "daq", make_source(settings, "daq"), Console(stderr=True)),
        kwargs={"stop": stop, "report_every_s": 2},
    )
    edge.start()
    time.sleep(seconds)
    stop.set()
    edge.join(60)
    assert not edge.is_alive()


def _await(query) -> None:
    query.awaitTermination()
    assert query.exception() is None


def test_daq_band_energies_reach_silver_and_gold_features(hot_lake, spark, tmp_path):
    settings = hot_lake.model_copy(
        update={"edge": hot_lake.edge.model_copy(update={"buffer_dir": tmp_path / "buffer"})}
    )
    _run_daq(settings, seconds=6)
    _await(bronze.run(spark, settings, once=True))
    landed = spark.read.format("delta").load(BRONZE_EDGE_FEATURES.path(settings.lake))
    names = {r.sensor.split(".", 1)[1] for r in landed.select("sensor").distinct().collect()}
    assert names == set(default_window_features())

    _await(silver.run(spark, settings, once=True))
    refined = spark.read.format("delta").load(SILVER_TELEMETRY.path(settings.lake))
    bands = refined.where("sensor LIKE 'vibration.band_%'").collect()
    assert bands and all(r.quantity == "energy" and r.unit is None for r in bands)
    assert {r.kafka_topic for r in bands} == {f"{settings.kafka.topic_prefix}.edge_features"}
    assert refined.where("sensor = 'vibration.crest'").count() > 0

    _await(gold_features.run(spark, settings, once=True))
    features = spark.read.format("delta").load(GOLD_FEATURES.path(settings.lake)).collect()
    vibrating = [f for f in features if f.vibration_band_50_200_mean_1h is not None]
    assert vibrating, "no gold.features row has the DAQ's band energies"
    for row in vibrating:
        for feature in EDGE_FEATURES_IN_GOLD:
            assert getattr(row, f"vibration_{feature}_mean_1h") >= 0
