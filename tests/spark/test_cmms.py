"""The CMMS loader MERGEs an export into silver.maintenance_events: idempotent, additive, strict."""

import datetime as dt

import pytest
from rich.console import Console

from plantlake.app.jobs import run_cmms
from plantlake.core.contracts import MAINTENANCE_EVENT_COLUMNS, SILVER_MAINTENANCE_EVENTS
from plantlake.core.errors import ContractError
from plantlake.pipelines.jobs.cmms import load_cmms_export
from plantlake.simulator.cmms_export import write_cmms_export
from plantlake.simulator.plant import build_plant, maintenance_log

pytestmark = pytest.mark.spark

DAY_MS = 24 * 3_600_000
PLANT = build_plant(7, start_ms=1_767_225_600_000)


def _table(spark, settings):
    return spark.read.format("delta").load(SILVER_MAINTENANCE_EVENTS.path(settings.lake))


def test_reloading_adds_nothing_and_a_longer_export_adds_only_its_new_events(
    spark, own_lake, tmp_path
):
    path = tmp_path / "cmms_export.csv"
    fortnight = write_cmms_export(PLANT, PLANT.start_ms + 14 * DAY_MS, path)
    first = load_cmms_export(spark, own_lake.lake, path)
    assert (first.read, first.inserted, first.updated, first.total) == (
        fortnight,
        fortnight,
        0,
        fortnight,
    )
    loaded_at = {r.event_time_ms: r.loaded_at for r in _table(spark, own_lake).collect()}

    again = load_cmms_export(spark, own_lake.lake, path)
    assert (again.inserted, again.updated, again.total) == (0, 0, fortnight)
    assert {r.event_time_ms: r.loaded_at for r in _table(spark, own_lake).collect()} == loaded_at

    month = write_cmms_export(PLANT, PLANT.start_ms + 30 * DAY_MS, path)
    assert month > fortnight
    longer = load_cmms_export(spark, own_lake.lake, path)
    assert (longer.inserted, longer.updated, longer.total) == (month - fortnight, 0, month)

    rows = _table(spark, own_lake).collect()
    expected = {(e.asset, e.kind, e.failure_mode, e.time_ms)
                for e in maintenance_log(PLANT, PLANT.start_ms + 30 * DAY_MS)}  # fmt: skip
    assert {(r.asset, r.event, r.failure_mode, r.event_time_ms) for r in rows} == expected
    assert all(
        r.event_time == dt.datetime.fromtimestamp(r.event_time_ms / 1000, dt.UTC).replace(tzinfo=None)
        and r.source_file == str(path)
        for r in rows
    )  # fmt: skip
    # Events already loaded keep the time they were first loaded.
    assert all(
        r.loaded_at == loaded_at[r.event_time_ms] for r in rows if r.event_time_ms in loaded_at
    )


def test_the_table_keeps_the_contract_columns_and_not_nulls(spark, own_lake, tmp_path):
    path = tmp_path / "cmms.csv"
    path.write_text(
        "asset,event,failure_mode,time_ms\nplant1/line1/press-01,inspection,,1767225600000\n"
    )
    load_cmms_export(spark, own_lake.lake, path)
    schema = _table(spark, own_lake).schema
    assert [(f.name, f.dataType.simpleString(), f.nullable) for f in schema] == [
        (c.name, "bigint" if c.type == "long" else c.type, c.nullable)
        for c in MAINTENANCE_EVENT_COLUMNS
    ]
    (row,) = _table(spark, own_lake).collect()
    assert row.failure_mode is None and row.event == "inspection"


def test_a_corrected_failure_mode_replaces_the_old_one_and_a_bad_file_writes_nothing(
    spark, own_lake, tmp_path
):
    header = "asset,event,failure_mode,time_ms\n"
    path = tmp_path / "cmms.csv"
    path.write_text(header + "plant1/line1/pump-02,failure,bearing_wear,1767225600000\n"
                    "plant1/line1/pump-02,repair,bearing_wear,1767240000000\n")  # fmt: skip
    console = Console(record=True, width=200)
    run_cmms(own_lake, path=path, console=console, spark=spark)
    printed = console.export_text()
    assert "2 events in" in printed and "2 new, 0 updated; 2 in the table" in printed

    path.write_text(header + "plant1/line1/pump-02,failure,seal_leak,1767225600000\n")
    corrected = load_cmms_export(spark, own_lake.lake, path)
    assert (corrected.inserted, corrected.updated, corrected.total) == (0, 1, 2)
    modes = {r.event: r.failure_mode for r in _table(spark, own_lake).collect()}
    assert modes == {"failure": "seal_leak", "repair": "bearing_wear"}

    version = (
        spark.sql(f"DESCRIBE HISTORY delta.`{SILVER_MAINTENANCE_EVENTS.path(own_lake.lake)}`")
        .first()
        .version
    )
    path.write_text(header + "plant1/line1/pump-02,inspection,,1767300000000\n"
                    "plant1/line1/pump-02,failed,,1767300000000\n")  # fmt: skip
    with pytest.raises(ContractError, match="line 3: event 'failed'"):
        load_cmms_export(spark, own_lake.lake, path)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{SILVER_MAINTENANCE_EVENTS.path(own_lake.lake)}`")
    assert history.first().version == version
