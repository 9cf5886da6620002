"""The JVM-free lake reader (plantlake.lake) on a file:// lake written by delta-rs: filters,
projection, SQL predicates, missing and unknown tables, table versions, and the CSV/Parquet export."""

import csv
import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from plantlake.core.config import LakeSettings, load_settings
from plantlake.core.contracts import (
    GOLD_TELEMETRY_1M,
    REFERENCE_UNITS,
    SILVER_QUARANTINE,
    SILVER_RULE_STATE,
    SILVER_TELEMETRY,
    TABLES,
)
from plantlake.core.errors import ContractError, SinkError
from plantlake.lake import export_table, read_arrow, read_table, table_info, time_column
from plantlake.lake.arrow_schema import contract_schema
from plantlake.lake.tables import TIME_COLUMNS

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
PUMP, MOTOR = "site1/line1/pump1", "site1/line1/motor1"


@pytest.fixture
def lake(tmp_path):
    root = f"file://{tmp_path}/lake"
    return load_settings(home=tmp_path / "home").model_copy(
        update={"lake": LakeSettings(root=root, checkpoint_root=f"file://{tmp_path}/chk")}
    )


def _quarantine_rows(asset: str, start: datetime, count: int, *, offset0: int = 0) -> list[dict]:
    rows = []
    for i in range(count):
        at = start + timedelta(minutes=i)
        row = dict.fromkeys(SILVER_QUARANTINE.column_names)
        row.update(
            schema_version=1, asset=asset, sensor="bearing_temp", value=100.0 + i, unit="degC",
            quality="Good", event_time_ms=int(at.timestamp() * 1000), event_time=at,
            failed_rules=[{"rule": "range", "action": "quarantine", "reason": f"{100 + i} > 90"}],
            kafka_topic="telemetry", kafka_partition=0, kafka_offset=offset0 + i,
            quarantined_at=at + timedelta(seconds=3),
        )  # fmt: skip
        rows.append(row)
    return rows


def _write(settings, ref, rows, mode="append"):
    table = pa.Table.from_pylist(rows, schema=contract_schema(ref))
    write_deltalake(ref.path(settings.lake), table, mode=mode)


@pytest.fixture
def quarantine(lake):
    """Two commits, in separate files: the pump's 8:00-8:59 and the motor's 9:00-9:59."""
    _write(lake, SILVER_QUARANTINE, _quarantine_rows(PUMP, T0, 60))
    _write(lake, SILVER_QUARANTINE, _quarantine_rows(MOTOR, T0 + timedelta(hours=1), 60,
                                                    offset0=1000))  # fmt: skip
    return lake


def test_asset_and_time_filters_pick_the_rows_of_that_asset_and_span(quarantine):
    got = read_table("silver.quarantine", asset=PUMP, since=T0 + timedelta(minutes=10),
                     until=T0 + timedelta(minutes=20), settings=quarantine)  # fmt: skip
    assert list(got["kafka_offset"]) == list(range(10, 20))  # since inclusive, until exclusive
    assert set(got["asset"]) == {PUMP}
    # A naive datetime is UTC; several assets are an OR.
    both = read_table("silver.quarantine", asset=[PUMP, MOTOR], since=datetime(2026, 11, 27, 8, 59),
                      until=datetime(2026, 11, 27, 9, 1), settings=quarantine)  # fmt: skip
    assert sorted(both["kafka_offset"]) == [59, 1000]


def test_a_time_filter_skips_files_outside_the_span(quarantine):
    from plantlake.lake.reader import scan

    plan = scan("silver.quarantine", since=T0 + timedelta(hours=1, minutes=30), settings=quarantine)
    files = list(plan.dataset.get_fragments(filter=plan.filter))
    assert len(list(plan.dataset.get_fragments())) == 2
    assert len(files) == 1  # the pump's file is never opened


def test_columns_are_projected_in_the_order_asked_and_types_are_the_lakes(quarantine):
    got = read_arrow("silver.quarantine", columns=["event_time", "asset", "failed_rules"],
                     asset=MOTOR, limit=3, settings=quarantine)  # fmt: skip
    assert got.column_names == ["event_time", "asset", "failed_rules"]
    assert got.num_rows == 3
    assert got.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert got.column("failed_rules").to_pylist()[0] == [
        {"rule": "range", "action": "quarantine", "reason": "100 > 90"}
    ]


def test_where_and_order_by_run_as_sql_and_keep_the_lake_types(quarantine):
    got = read_arrow("silver.quarantine", where="value >= 158 AND sensor = 'bearing_temp'",
                     order_by="value DESC, asset", limit=3,
                     columns=["asset", "value", "event_time", "failed_rules"],
                     settings=quarantine)  # fmt: skip
    assert got.column("value").to_pylist() == [159.0, 159.0, 158.0]
    assert got.column("asset").to_pylist() == [MOTOR, PUMP, MOTOR]
    lake_types = contract_schema(SILVER_QUARANTINE)
    assert [f.type for f in got.schema] == [lake_types.field(n).type for n in got.column_names]
    assert got.column("event_time").to_pylist()[0] == T0 + timedelta(hours=1, minutes=59)


def test_where_combines_with_the_asset_filter(quarantine):
    got = read_table(
        "silver.quarantine", asset=PUMP, where="kafka_offset >= 58", settings=quarantine
    )
    assert sorted(got["kafka_offset"]) == [58, 59]


def test_a_bad_predicate_is_a_contract_error_naming_the_table(quarantine):
    with pytest.raises(ContractError, match="silver.quarantine"):
        read_table("silver.quarantine", where="no_such_column = 1", settings=quarantine)


def test_a_missing_table_reads_as_no_rows_with_the_contract_columns(lake):
    got = read_table("silver.quarantine", settings=lake)
    assert got.empty
    assert list(got.columns) == list(SILVER_QUARANTINE.column_names)
    assert table_info("silver.quarantine", settings=lake) is None
    # Filters and SQL apply to the empty table as to a real one.
    filtered = read_arrow("silver.quarantine", asset=PUMP, since=T0, where="value > 1",
                          order_by="event_time_ms", columns=["asset", "value"], settings=lake)  # fmt: skip
    assert filtered.num_rows == 0 and filtered.column_names == ["asset", "value"]


def test_a_table_older_than_its_contract_reads_the_new_columns_as_nulls(lake):
    # silver.quarantine as written before review_decision_id joined the contract.
    older = contract_schema(SILVER_QUARANTINE).remove(
        SILVER_QUARANTINE.column_names.index("review_decision_id")
    )
    rows = [{k: v for k, v in r.items() if k != "review_decision_id"}
            for r in _quarantine_rows(PUMP, T0, 3)]  # fmt: skip
    write_deltalake(SILVER_QUARANTINE.path(lake.lake), pa.Table.from_pylist(rows, schema=older))
    got = read_arrow("silver.quarantine", columns=["kafka_offset", "review_decision_id"],
                     where="review_decision_id IS NULL", settings=lake)  # fmt: skip
    assert got.column("kafka_offset").to_pylist() == [0, 1, 2]
    assert got.column("review_decision_id").null_count == 3


def test_an_unknown_table_names_the_known_ones(lake):
    with pytest.raises(ContractError) as raised:
        read_table("silver.telemetri", settings=lake)
    assert raised.value.code == "contract"
    assert "silver.telemetry" in str(raised.value) and "gold.twin_state" in str(raised.value)
    with pytest.raises(ContractError):
        time_column("nope.nothing")


def test_unknown_columns_and_impossible_filters_are_refused(quarantine):
    with pytest.raises(ContractError, match="no column"):
        read_table("silver.quarantine", columns=["asset", "colour"], settings=quarantine)
    with pytest.raises(ContractError, match="no asset column"):
        read_table("reference.units", asset=PUMP, settings=quarantine)
    with pytest.raises(ContractError, match="no time column"):
        read_table("reference.units", since=T0, settings=quarantine)


def test_table_info_gives_the_version_read_and_its_commit_time(quarantine):
    before = datetime.now(UTC)
    _write(quarantine, SILVER_QUARANTINE, _quarantine_rows(PUMP, T0 + timedelta(hours=2), 1,
                                                          offset0=5000))  # fmt: skip
    info = table_info("silver.quarantine", settings=quarantine)
    assert info is not None
    assert info.version == 2  # the fixture's two commits, then this one
    assert info.name == "silver.quarantine"
    assert info.path == SILVER_QUARANTINE.path(quarantine.lake)
    assert before - timedelta(seconds=1) <= info.committed_at <= datetime.now(UTC)
    assert info.committed_at.tzinfo is not None


def test_every_table_has_a_time_column_entry_that_it_really_has():
    assert set(TIME_COLUMNS) == {ref.name for ref in TABLES}
    for ref in TABLES:
        column = time_column(ref.name)
        assert column is None or column in ref.column_names, ref.name
    assert time_column(SILVER_TELEMETRY.name) == "event_time_ms"
    assert time_column(GOLD_TELEMETRY_1M.name) == "window_start_ms"
    assert time_column(REFERENCE_UNITS.name) is None


def test_every_contract_reads_as_an_arrow_schema():
    for ref in TABLES:
        assert contract_schema(ref).names == list(ref.column_names)
    assert pa.types.is_map(contract_schema(SILVER_RULE_STATE).field("runs").type)


def test_csv_export_writes_iso_utc_times_and_json_for_nested_values(quarantine, tmp_path):
    out = tmp_path / "q.csv"
    result = export_table("silver.quarantine", out, fmt="csv", asset=MOTOR,
                          since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=1, minutes=2),
                          settings=quarantine)  # fmt: skip
    assert (result.rows, result.path, result.version) == (2, out, 1)
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["kafka_offset"] for r in rows] == ["1000", "1001"]
    assert rows[0]["event_time"] == "2026-11-27T09:00:00.000Z"
    assert rows[0]["quarantined_at"] == "2026-11-27T09:00:03.000Z"
    assert json.loads(rows[1]["failed_rules"]) == [
        {"rule": "range", "action": "quarantine", "reason": "101 > 90"}
    ]
    assert float(rows[1]["value"]) == 101.0
    assert rows[0]["reviewer"] == ""  # null is an empty cell


def test_parquet_export_keeps_the_lake_types_and_refuses_to_overwrite(quarantine, tmp_path):
    out = tmp_path / "q.parquet"
    result = export_table("silver.quarantine", out, fmt="parquet", settings=quarantine)
    assert result.rows == 120
    back = pq.read_table(out)
    assert back.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert back.num_rows == 120
    with pytest.raises(SinkError, match="exists"):
        export_table("silver.quarantine", out, fmt="parquet", asset=PUMP, settings=quarantine)
    assert pq.read_table(out).num_rows == 120  # untouched
    again = export_table("silver.quarantine", out, fmt="parquet", asset=PUMP, overwrite=True,
                         settings=quarantine)  # fmt: skip
    assert again.rows == pq.read_table(out).num_rows == 60
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_exporting_a_missing_table_writes_the_header_only(lake, tmp_path):
    result = export_table("silver.quarantine", tmp_path / "q.csv", fmt="csv", settings=lake)
    assert (result.rows, result.version) == (0, None)
    header = (tmp_path / "q.csv").read_text().splitlines()
    assert header == [",".join(f'"{c}"' for c in SILVER_QUARANTINE.column_names)]
