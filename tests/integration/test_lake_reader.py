"""The JVM-free reader and `plantlake export` against the real MinIO: a silver.telemetry written by
delta-rs under a scratch prefix reads back filtered, and exports to CSV and Parquet through the
CLI with every value intact."""

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from plantlake.core.contracts import SILVER_TELEMETRY
from plantlake.lake import read_arrow, read_table, table_info
from plantlake.lake.arrow_schema import contract_schema
from plantlake.lake.tables import delta_uri
from plantlake.services.minio import delta_rs_options

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
PUMP, MOTOR = "site1/line1/pump1", "site1/line1/motor1"


def _readings(asset: str, hours: int, offset0: int) -> list[dict]:
    rows = []
    for i in range(hours * 60):
        at = T0 + timedelta(minutes=i)
        row = dict.fromkeys(SILVER_TELEMETRY.column_names)
        row.update(
            asset=asset, sensor="bearing_temp", asset_class="pump", quantity="temperature",
            value=40.0 + i / 8, unit="degC", source_value=104.0 + i / 8 * 1.8,
            source_unit="degF", quality="Good", event_time=at,
            event_time_ms=int(at.timestamp() * 1000), receive_time=at + timedelta(milliseconds=250),
            source_protocol="opcua", source_node="edge-1", sequence=i,
            dq_warnings=["stuck"] if i % 60 == 0 else [], kafka_topic="telemetry",
            kafka_partition=0, kafka_offset=offset0 + i, bronze_ingest_time=at,
            silver_time=at + timedelta(seconds=2),
        )  # fmt: skip
        rows.append(row)
    return rows


@pytest.fixture
def telemetry(scratch_lake):
    """Six hours of one sensor each for two assets, in two commits."""
    uri = delta_uri(SILVER_TELEMETRY.path(scratch_lake.lake))
    options = delta_rs_options(scratch_lake)
    for asset, offset0 in ((PUMP, 0), (MOTOR, 100_000)):
        table = pa.Table.from_pylist(_readings(asset, 6, offset0),
                                     schema=contract_schema(SILVER_TELEMETRY))  # fmt: skip
        write_deltalake(uri, table, mode="append", storage_options=options)
    return scratch_lake


def _export(settings, *args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLANTLAKE_LAKE__ROOT": settings.lake.root,
           "PLANTLAKE_LAKE__CHECKPOINT_ROOT": settings.lake.checkpoint_root}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", "from plantlake.app.cli import main; main()", "export", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=180,
    )  # fmt: skip


def test_one_assets_four_hours_read_back_from_minio(telemetry):
    since, until = T0 + timedelta(hours=1), T0 + timedelta(hours=5)
    got = read_table("silver.telemetry", asset=PUMP, since=since, until=until, settings=telemetry)
    assert len(got) == 4 * 60
    assert set(got["asset"]) == {PUMP}
    assert got["event_time"].min() == since and got["event_time"].max() == until - timedelta(
        minutes=1
    )
    assert sorted(got["kafka_offset"]) == list(range(60, 300))
    info = table_info("silver.telemetry", settings=telemetry)
    assert info is not None and info.version == 1
    assert info.path.startswith("s3a://plantlake/tests/")
    # A table never written there reads as no rows, not an error.
    assert read_table("gold.twin_state", settings=telemetry).empty


def test_export_to_csv_and_parquet_round_trips_through_the_cli(telemetry, tmp_path):
    window = ["--asset", MOTOR, "--since", "2026-11-27T07:00:00Z", "--until", "2026-11-27T08:00"]
    done = _export(telemetry, "silver.telemetry", *window, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    csv_path = tmp_path / "silver.telemetry.csv"  # the default name, in the working folder
    assert f"60 rows written to {csv_path.name}" in done.stdout
    want = read_arrow("silver.telemetry", asset=MOTOR, since=T0 + timedelta(hours=1),
                      until=T0 + timedelta(hours=2), settings=telemetry).to_pylist()  # fmt: skip
    with csv_path.open(newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: int(r["kafka_offset"]))
    want.sort(key=lambda r: r["kafka_offset"])
    assert len(rows) == len(want) == 60
    for row, expected in zip(rows, want, strict=True):
        assert float(row["value"]) == expected["value"]
        assert float(row["source_value"]) == expected["source_value"]
        assert int(row["event_time_ms"]) == expected["event_time_ms"]
        assert datetime.fromisoformat(row["event_time"]) == expected["event_time"]
        assert datetime.fromisoformat(row["receive_time"]) == expected["receive_time"]
        assert row["receive_time"].endswith(".250Z")
        assert json.loads(row["dq_warnings"]) == expected["dq_warnings"]
        assert row["released_by"] == ""

    parquet_path = tmp_path / "motor.parquet"
    done = _export(telemetry, "silver.telemetry", "--format", "parquet", *window,
                   "--out", str(parquet_path), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    back = pq.read_table(parquet_path)
    assert back.schema.equals(contract_schema(SILVER_TELEMETRY), check_metadata=False)
    assert sorted(back.to_pylist(), key=lambda r: r["kafka_offset"]) == want

    again = _export(telemetry, "silver.telemetry", "--format", "parquet", "--out",
                    str(parquet_path), cwd=tmp_path)  # fmt: skip
    assert again.returncode == 1 and "exists" in again.stderr and "--force" in again.stderr
    forced = _export(telemetry, "silver.telemetry", "--format", "parquet", "--out",
                     str(parquet_path), "--force", cwd=tmp_path)  # fmt: skip
    assert forced.returncode == 0 and pq.read_table(parquet_path).num_rows == 2 * 6 * 60


def test_a_bad_table_or_time_is_one_clear_error_line(telemetry, tmp_path):
    unknown = _export(telemetry, "silver.telemetri", cwd=tmp_path)
    assert unknown.returncode == 1
    assert "error [contract]: Unknown lake table 'silver.telemetri'" in unknown.stderr
    assert "silver.telemetry" in unknown.stderr and "Traceback" not in unknown.stderr
    bad_time = _export(telemetry, "silver.telemetry", "--since", "yesterday", cwd=tmp_path)
    assert bad_time.returncode == 1
    assert "--since 'yesterday' is not an ISO 8601 time" in bad_time.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
