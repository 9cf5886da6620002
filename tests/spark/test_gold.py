"""The gold layer: latest state over silver, watermarks, window aggregates, replay and late data.
(Twin state and liveness are the hot path's: tests/unit/test_twin_fold.py.)"""

import datetime as dt
import itertools
import random
import statistics

import numpy as np
import pytest

from plantlake.core.config import LakeSettings
from plantlake.core.contracts import SILVER_TELEMETRY_COLUMNS
from plantlake.pipelines.jobs import gold
from plantlake.pipelines.jobs.gold import GoldOptions, GoldPaths, merge_watermarks, process_batch
from plantlake.pipelines.transforms.aggregates import WINDOWS_MS, window_aggregates
from plantlake.pipelines.transforms.twin_state import latest_state

pytestmark = pytest.mark.spark

SILVER_SCHEMA = ", ".join(f"{c.name} {c.type}" for c in SILVER_TELEMETRY_COLUMNS)
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window boundary
MIN = 60_000
_offsets = itertools.count()


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def reading(asset, sensor, t_ms, value, *, quality="Good", quantity="temperature", node="n1",
            received_ms=None, written_ms=None) -> tuple:  # fmt: skip
    """One silver.telemetry row, in SILVER_TELEMETRY_COLUMNS order."""
    received = received_ms if received_ms is not None else t_ms + 50
    return (
        asset, sensor, "pump", quantity, value, "degC", value, "degC", quality,
        _ts(t_ms), t_ms, _ts(received), "opcua", node, None, "f1", None,
        "plantlake.telemetry", 0, next(_offsets), _ts(received + 10),
        _ts(written_ms if written_ms is not None else received + 20), None,
    )  # fmt: skip


def silver(spark, rows):
    return spark.createDataFrame(rows, SILVER_SCHEMA)


def test_latest_state_takes_the_newest_good_value_and_ignores_bad(spark):
    rows = [
        reading("a", "temp", T0, 10.0),
        reading("a", "temp", T0 + 2000, 20.0, received_ms=T0 + 2100),
        reading("a", "temp", T0 + 2000, 21.0, received_ms=T0 + 2200),  # same time, later receipt
        reading("a", "temp", T0 + 1000, 15.0),  # arrives late, older
        reading("a", "temp", T0 + 3000, float("nan"), quality="Bad"),
        reading("a", "temp", T0 + 4000, 99.0, quality="Uncertain"),
        reading("b", "temp", T0, 5.0, node="n2"),
        reading("c", "temp", T0, 7.0, quality="Bad"),  # never a Good value: no state
    ]
    state = {(r.asset, r.sensor): r for r in latest_state(silver(spark, rows)).collect()}
    assert set(state) == {("a", "temp"), ("b", "temp")}
    assert state["a", "temp"].value == 21.0
    assert state["a", "temp"].event_time == dt.datetime(2026, 1, 1, 0, 0, 2)
    assert (state["a", "temp"].quality, state["a", "temp"].unit) == ("Good", "degC")
    assert state["b", "temp"].source_node == "n2"


def _table(spark, path):
    return {(r.asset, r.sensor): r for r in spark.read.format("delta").load(path).collect()}


def test_watermarks_only_move_forward_and_a_retry_changes_nothing(spark, tmp_path):
    from delta.tables import DeltaTable

    path = f"file://{tmp_path}/watermarks"
    batches = [
        (0, [reading("a", "temp", T0 + 5000, 50.0), reading("b", "temp", T0, 1.0)]),
        (
            1,
            [
                reading("a", "temp", T0 + 1000, 10.0),  # late and older: a stays
                reading("b", "temp", T0 + 9000, 2.0, quality="Bad"),
            ],
        ),  # Bad: b stays  # fmt: skip
        (1, [reading("a", "temp", T0 + 9000, 99.0)]),  # a retry of batch 1 computing otherwise
    ]
    for batch_id, rows in batches:
        merge_watermarks(silver(spark, rows), path, app_id="w", batch_id=batch_id)
    marks = {k: r.event_time_ms for k, r in _table(spark, path).items()}
    assert marks == {("a", "temp"): T0 + 5000, ("b", "temp"): T0}
    assert DeltaTable.forPath(spark, path).history().count() == 2  # the retry was skipped


def test_window_aggregates_are_exact_over_good_rows(spark):
    values = [float(v) for v in range(1, 21)]
    rows = [reading("a", "temp", T0 + i * 2000, v) for i, v in enumerate(values)]  # 0..38 s
    rows.append(reading("a", "temp", T0 + 45_000, 1e6, quality="Bad"))
    rows.append(reading("a", "temp", T0 + 50_000, 1e6, quality="Uncertain"))
    rows.append(reading("a", "temp", T0 + 2 * MIN, 100.0))  # next minute, same 5 minutes
    one = {
        r.window_start_ms: r
        for r in window_aggregates(silver(spark, rows), window_ms=MIN).collect()
    }
    assert sorted(one) == [T0, T0 + 2 * MIN]
    w = one[T0]
    assert (w["count"], w["min"], w["max"]) == (20, 1.0, 20.0)
    assert w.mean == pytest.approx(10.5)
    assert w.std == pytest.approx(statistics.stdev(values))
    assert w.p95 == pytest.approx(float(np.percentile(values, 95)))  # 19.05: exact, interpolated
    assert (w.window_start, w.window_end) == (
        dt.datetime(2026, 1, 1),
        dt.datetime(2026, 1, 1, 0, 1),
    )
    assert one[T0 + 2 * MIN].std is None  # one value has no sample deviation


def _lake(lake_settings, tmp_path, name):
    root = f"file://{tmp_path}/{name}"
    return lake_settings.model_copy(
        update={"lake": LakeSettings(root=f"{root}/lake", checkpoint_root=f"{root}/chk")}
    )


def _append(spark, settings, rows):
    path = GoldPaths.for_lake(settings.lake).silver
    silver(spark, rows).write.format("delta").mode("append").save(path)


def _run_once(spark, settings):
    query = gold.run(spark, settings, once=True)
    query.awaitTermination()
    assert query.exception() is None


def _aggregates(spark, settings):
    paths = GoldPaths.for_lake(settings.lake)
    return {
        name: sorted(tuple(r) for r in spark.read.format("delta").load(p).collect())
        for name, p in paths.windows.items()
    }


def test_a_replay_after_an_outage_gives_the_same_aggregates(spark, lake_settings, tmp_path):
    rng = random.Random(7)
    # Two assets, 10 minutes at one reading per 20 s (values vary so every statistic matters).
    plant = {
        asset: [reading(asset, "temp", T0 + s * 1000, round(rng.gauss(60, 5), 3), node=node)
                for s in range(0, 600, 20)]
        for asset, node in (("x", "n1"), ("y", "n2"))
    }  # fmt: skip
    # Without an outage each window would hold exactly its readings.
    everything = silver(spark, plant["x"] + plant["y"])
    expected = {
        name: sorted(tuple(r) for r in window_aggregates(everything, window_ms=ms).collect())
        for name, ms in WINDOWS_MS.items()
    }
    assert sum(row[11] for row in expected["1m"]) == 60

    # y's edge node is cut off from minute 4 and buffers; x keeps flowing but one of its
    # minutes arrives late (within the watermark). Then y replays its buffer out of order.
    settings = _lake(lake_settings, tmp_path, "outage")
    x_late = [r for r in plant["x"] if 3 * MIN <= r[10] - T0 < 4 * MIN]
    x_live = [r for r in plant["x"] if r not in x_late]
    y_before = [r for r in plant["y"] if r[10] - T0 < 4 * MIN]
    y_buffered = [r for r in plant["y"] if r[10] - T0 >= 4 * MIN]
    rng.shuffle(y_buffered)
    _append(spark, settings, x_live + y_before)
    _run_once(spark, settings)
    _append(spark, settings, y_buffered + x_late)
    _run_once(spark, settings)

    assert _aggregates(spark, settings) == expected
    late = spark.read.format("delta").load(GoldPaths.for_lake(settings.lake).late_data)
    assert late.count() == 0


def test_data_beyond_the_watermark_is_recorded_with_its_lateness(spark, lake_settings, tmp_path):
    settings = _lake(lake_settings, tmp_path, "late")
    paths = GoldPaths.for_lake(settings.lake)
    options = GoldOptions(watermark_delay_ms=MIN)
    first = [reading("z", "temp", T0 + m * MIN, float(m)) for m in range(11)]  # minutes 0..10
    _append(spark, settings, first)
    process_batch(
        silver(spark, first), 0, paths=paths, app_id="t", options=options, now_ms=T0 + 11 * MIN
    )
    # The watermark is now minute 9: minute 2 (windows [2,3) and [0,5)) has closed, minute 9.5
    # (windows [9,10) and [5,10)) has not.
    second = [reading("z", "temp", T0 + 2 * MIN + 30_000, 100.0),
              reading("z", "temp", T0 + 9 * MIN + 30_000, 200.0)]  # fmt: skip
    _append(spark, settings, second)
    process_batch(
        silver(spark, second), 1, paths=paths, app_id="t", options=options, now_ms=T0 + 11 * MIN
    )

    late = spark.read.format("delta").load(paths.late_data).collect()
    assert sorted((r.gold_table, r.event_time_ms, r.lateness_ms, r.batch_id) for r in late) == [
        ("gold.telemetry_1m", T0 + 2 * MIN + 30_000, 9 * MIN - (2 * MIN + 30_000), 1),
        ("gold.telemetry_5m", T0 + 2 * MIN + 30_000, 9 * MIN - (2 * MIN + 30_000), 1),
    ]
    one = {
        r.window_start_ms - T0: r["count"]
        for r in spark.read.format("delta").load(paths.windows["1m"]).collect()
    }
    assert one[2 * MIN] == 1 and one[9 * MIN] == 2  # closed window kept; open one merged
    # Only windows the watermark (minute 9) has not closed keep their values, sorted.
    held = {
        (r.window_ms, r.window_start_ms - T0): r["values"]
        for r in spark.read.format("delta").load(paths.open_windows).collect()
    }
    assert held == {(MIN, 9 * MIN): [9.0, 200.0], (MIN, 10 * MIN): [10.0],
                    (5 * MIN, 5 * MIN): [5.0, 6.0, 7.0, 8.0, 9.0, 200.0],
                    (5 * MIN, 10 * MIN): [10.0]}  # fmt: skip


def test_p95_over_sorted_values_is_sparks_exact_percentile(spark):
    from pyspark.sql import functions as F

    rng = random.Random(11)
    rows = [
        reading("a", f"s{n}", T0 + i * 100, rng.choice([rng.gauss(50, 9), 42.0]))
        for n in (1, 2, 3, 7, 20, 61, 300)
        for i in range(n)
    ]
    frame = silver(spark, rows)
    ours = {r.sensor: r.p95 for r in window_aggregates(frame, window_ms=MIN).collect()}
    spark_p95 = {
        r.sensor: r.p95
        for r in frame.groupBy("sensor")
        .agg(F.percentile("value", F.lit(0.95)).alias("p95"))
        .collect()
    }
    assert ours == spark_p95  # bit for bit, ties and interpolation included
