"""The gold.features job: incremental micro-batches equal one full computation; late data updates."""

import pandas as pd
import pytest

from plantlake.core.contracts import GOLD_FEATURES, SILVER_TELEMETRY
from plantlake.pipelines.jobs import gold_features
from plantlake.pipelines.transforms.features import (
    FEATURE_COLUMNS,
    HOUR_MS,
    MINUTE_MS,
    asset_features,
)
from tests.lake_contract import assert_tables_match_contract
from tests.spark.test_gold import T0, reading, silver

pytestmark = pytest.mark.spark

PUMP = "plant1/line1/pump-02"


def _rows(start_h, end_h, *, asset=PUMP, written_ms=None):
    rows = []
    for t in range(T0 + start_h * HOUR_MS, T0 + end_h * HOUR_MS, 2 * MINUTE_MS):
        hours = (t - T0) / HOUR_MS
        rows.append(reading(asset, "bearing_temperature", t, 50.0 + hours, written_ms=written_ms))
        rows.append(reading(asset, "vibration", t, 1.0 + hours / 10, quantity="vibration",
                            written_ms=written_ms))  # fmt: skip
        # The edge's window features: crest and a band feed gold.features, the peak does not.
        rows.append(reading(asset, "vibration.crest", t, 3.0 + hours / 100, quantity="ratio",
                            written_ms=written_ms))  # fmt: skip
        rows.append(reading(asset, "vibration.band_0_50", t, 0.2 * hours, quantity="energy",
                            written_ms=written_ms))  # fmt: skip
        rows.append(reading(asset, "vibration.peak", t, 99.0, quantity="vibration",
                            written_ms=written_ms))  # fmt: skip
    return rows


def _append(spark, settings, rows):
    silver(spark, rows).write.format("delta").mode("append").save(
        SILVER_TELEMETRY.path(settings.lake)
    )


def _run_once(spark, settings):
    scored = []
    query = gold_features.run(spark, settings, once=True,
                              on_features=lambda rows, batch: scored.append(rows.count()))  # fmt: skip
    query.awaitTermination()
    return scored


def _features(spark, settings) -> pd.DataFrame:
    frame = spark.read.format("delta").load(GOLD_FEATURES.path(settings.lake)).toPandas()
    return frame.sort_values(["asset", "feature_time_ms"]).reset_index(drop=True)


def test_incremental_batches_equal_one_full_computation_and_late_data_updates(spark, own_lake):
    settings = own_lake
    first, second = _rows(0, 26), _rows(26, 30)
    other = _rows(0, 3, asset="plant1/line1/motor-03")
    _append(spark, settings, first + other)
    assert _run_once(spark, settings) == [26 * 12 + 3 * 12]
    _append(spark, settings, second)
    assert _run_once(spark, settings) == [4 * 12]  # only the new buckets were recomputed

    got = _features(spark, settings)
    expected = asset_features(
        pd.DataFrame(
            [
                (r[0], r[1], r[2], r[3], r[4], r[10], int(r[20].timestamp() * 1000))
                for r in first + second
                if r[1] != "vibration.peak"  # the job leaves out what no feature uses
            ],
            columns=list(gold_features.READING_COLUMNS),  # fmt: skip
        )
    )
    mine = got[got["asset"] == PUMP].reset_index(drop=True)
    assert mine["feature_time_ms"].tolist() == expected["feature_time_ms"].tolist()
    for name in FEATURE_COLUMNS:
        pd.testing.assert_series_equal(mine[name], expected[name], check_names=False, rtol=1e-9)
    assert mine["vibration_crest_mean_1h"].notna().all()
    assert (
        mine["vibration_band_0_50_mean_1h"].iloc[-1] > mine["vibration_band_0_50_mean_1h"].iloc[0]
    )
    assert (got.groupby(["asset", "feature_time_ms"]).size() == 1).all()
    assert_tables_match_contract(spark, settings.lake, ("gold.features",))

    # A reading that arrives late lands in the rows it feeds, and they become knowable later.
    late_t = T0 + 29 * HOUR_MS + 30_000
    arrival = T0 + 40 * HOUR_MS
    late = reading(PUMP, "bearing_temperature", late_t, 500.0, received_ms=arrival - 10,
                   written_ms=arrival + 10)  # fmt: skip
    _append(spark, settings, [late])
    _run_once(spark, settings)
    after = _features(spark, settings).set_index(["asset", "feature_time_ms"])
    row = after.loc[(PUMP, T0 + 29 * HOUR_MS + 5 * MINUTE_MS)]
    assert row["knowable_at_ms"] == arrival
    assert (
        row["temperature_mean_15m"]
        > got.set_index(["asset", "feature_time_ms"]).loc[
            (PUMP, T0 + 29 * HOUR_MS + 5 * MINUTE_MS), "temperature_mean_15m"
        ]
    )
    earlier = after.loc[(PUMP, T0 + 29 * HOUR_MS)]
    assert earlier["knowable_at_ms"] < arrival


def test_a_features_table_of_an_earlier_version_gains_the_new_columns(spark, own_lake):
    settings = own_lake
    old = [c for c in GOLD_FEATURES.columns if "crest" not in c and "band_" not in c]
    spark.createDataFrame([], ", ".join(old)).write.format("delta").save(
        GOLD_FEATURES.path(settings.lake)
    )
    _append(spark, settings, _rows(0, 2))
    assert _run_once(spark, settings) == [2 * 12]
    got = _features(spark, settings)
    assert set(got.columns) == set(GOLD_FEATURES.column_names)
    assert got["vibration_crest_mean_1h"].notna().all()
