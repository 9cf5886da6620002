"""reference import/export: a site's registry file MERGEd into reference.asset_registry (history
stays, a remount is a new row), refused whole when it would overlap the table, and round trips."""

import datetime as dt

import pytest

from plantlake.app.registry_files import export_registry_file, import_registry_file
from plantlake.core.contracts import REFERENCE_ASSET_REGISTRY
from plantlake.core.registry_entries import FIELDS, RegistryFileError
from plantlake.pipelines.jobs.reference import read_registry
from plantlake.pipelines.transforms.asset_registry import join_registry

pytestmark = pytest.mark.spark

HEADER = ",".join(FIELDS)
PUMP = "acme/boiler-house/feedpump-1"
SINCE = "2026-01-01T00:00:00Z"
MOVED = "2026-03-01T00:00:00Z"


def _file(tmp_path, name: str, *rows: str):
    path = tmp_path / name
    path.write_text("\n".join((HEADER, *rows)) + "\n")
    return path


def _row(sensor, klass, quantity, start, end="", unit="", protocol="modbus", address=""):
    return f"{PUMP},{sensor},{klass},{quantity},acme,boiler-house,{start},{end},{unit},{protocol},{address}"


def test_import_merges_a_remount_as_a_new_row_and_the_as_of_join_uses_the_right_one(
    spark, own_lake, tmp_path
):
    first = _file(tmp_path, "registry.csv",
                  _row("bearing_temp", "pump", "temperature", SINCE, unit="FAH", address="11:holding:0"),
                  _row("vibration", "motor", "vibration", SINCE, unit="mm/s"))  # fmt: skip
    count, load = import_registry_file(spark, own_lake, first, "csv")
    assert (count, load.inserted, load.updated, load.unchanged) == (2, 2, 0, 0)

    # The accelerometer moves from the motor to the pump casing: the file ends the old interval
    # and starts a new one; the temperature row is not in the file and stays.
    remount = _file(tmp_path, "remount.csv",
                    _row("vibration", "motor", "vibration", SINCE, MOVED, unit="mm/s"),
                    _row("vibration", "pump", "vibration", MOVED, unit="mm/s"))  # fmt: skip
    _, load = import_registry_file(spark, own_lake, remount, "csv")
    assert (load.inserted, load.updated, load.unchanged) == (1, 1, 1)
    rows = {(e.sensor, e.valid_from): e for e in read_registry(spark, own_lake.lake)}
    assert len(rows) == 3
    assert rows[("bearing_temp", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))].address == "11:holding:0"

    registry = spark.read.format("delta").load(REFERENCE_ASSET_REGISTRY.path(own_lake.lake))
    readings = spark.createDataFrame(
        [
            (PUMP, "vibration", dt.datetime(2026, 2, 1)),
            (PUMP, "vibration", dt.datetime(2026, 3, 2)),
        ],
        "asset string, sensor string, event_time timestamp",
    )
    joined = join_registry(readings, registry=registry).orderBy("event_time").collect()
    assert [r.asset_class for r in joined] == ["motor", "pump"]


def test_a_file_overlapping_the_table_is_refused_whole_naming_its_line(spark, own_lake, tmp_path):
    base = _file(tmp_path, "base.csv", _row("flow", "pump", "flow", SINCE, unit="MQH"))
    import_registry_file(spark, own_lake, base, "csv")
    # A new open interval without ending the old one: two intervals valid at once.
    bad = _file(tmp_path, "bad.csv",
                _row("pressure", "pump", "pressure", SINCE, unit="PS"),
                _row("flow", "pump", "flow", MOVED, unit="MQH"))  # fmt: skip
    with pytest.raises(RegistryFileError) as refused:
        import_registry_file(spark, own_lake, bad, "csv")
    [problem] = refused.value.problems
    assert problem.lines == (3,) and "reference.asset_registry" in problem.message
    # Nothing of the file was written, not even its good line.
    assert {e.sensor for e in read_registry(spark, own_lake.lake)} == {"flow"}


def test_import_export_import_changes_nothing(spark, own_lake, tmp_path):
    site = _file(tmp_path, "site.csv",
                 _row("bearing_temp", "pump", "temperature", SINCE, MOVED, unit="FAH"),
                 _row("bearing_temp", "pump", "temperature", MOVED, unit="CEL"),
                 _row("discharge", "pump", "pressure", SINCE, unit="PS", protocol="sparkplug",
                      address="acme/gw-1/feedpump-1/discharge"))  # fmt: skip
    import_registry_file(spark, own_lake, site, "csv")
    for kind in ("csv", "yaml"):
        exported = tmp_path / f"export.{kind}"
        assert export_registry_file(spark, own_lake, exported, kind) == 3
        count, load = import_registry_file(spark, own_lake, exported, kind)
        assert (count, load.inserted, load.updated, load.unchanged) == (3, 0, 0, 3)
    again = tmp_path / "again.csv"
    export_registry_file(spark, own_lake, again, "csv")
    assert again.read_text() == (tmp_path / "export.csv").read_text()


def test_a_registry_table_from_before_the_device_columns_gains_them(spark, own_lake, tmp_path):
    path = REFERENCE_ASSET_REGISTRY.path(own_lake.lake)
    old = ("asset string, sensor string, asset_class string, quantity string, site string, "
           "line string, valid_from timestamp, valid_to timestamp")  # fmt: skip
    since = dt.datetime(2026, 1, 1)
    spark.createDataFrame(
        [(PUMP, "flow", "pump", "flow", "acme", "boiler-house", since, None)], old
    ).write.format("delta").save(path)
    site = _file(tmp_path, "site.csv", _row("speed", "pump", "speed", SINCE, unit="RPM"))
    _, load = import_registry_file(spark, own_lake, site, "csv")
    assert (load.inserted, load.unchanged) == (1, 1)
    columns = spark.read.format("delta").load(path).columns
    assert columns == list(REFERENCE_ASSET_REGISTRY.column_names)
