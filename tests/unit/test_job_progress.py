"""Progress of streaming jobs from Spark's progress events (as `json.loads(progress.json)` gives
them): batches and rows counted once, the backlog each source reports, the terminal line, and
the job progress file the workbench reads."""

import copy
import json

import pytest

from plantlake.app.job_progress import (
    JobTally,
    file_payload,
    progress_line,
    query_backlog,
    source_backlog,
    summary_line,
)
from plantlake.app.query_watch import QueryWatch, job_progress_file

RUN = "88e2ff94-ede0-45a8-b687-6316fbef529a"
QUERY = "ce011fdc-8762-4dcb-84eb-a77333e28109"
START_MS = 1_795_791_840_000  # 2026-11-27T15:04:00Z

KAFKA_SOURCE = {
    "description": "KafkaV2[Subscribe[plantlake.telemetry]]",
    "startOffset": {"plantlake.telemetry": {"0": 100000, "1": 100500}},
    "endOffset": {"plantlake.telemetry": {"0": 125000, "1": 125500}},
    "latestOffset": {"plantlake.telemetry": {"0": 185000, "1": 190500}},
    "numInputRows": 50000,
    "inputRowsPerSecond": 12000.0,
    "processedRowsPerSecond": 20833.3,
    "metrics": {"avgOffsetsBehindLatest": "62500.0", "maxOffsetsBehindLatest": "65000",
                "minOffsetsBehindLatest": "60000"},
}  # fmt: skip


def _delta_offset(version: int, index: int = -1, starting: bool = False) -> dict:
    return {"sourceVersion": 1, "reservoirId": "7293c57a-6611-4768-9a2c-af237c0830cf",
            "reservoirVersion": version, "index": index, "isStartingVersion": starting}  # fmt: skip


def _delta_source(table: str, end: dict, start: dict | None = None) -> dict:
    """A Delta source as Delta 4.4 reports it: no latest offset, no metrics."""
    return {
        "description": f"DeltaSource[s3a://plantlake/bronze/{table}]",
        "startOffset": start, "endOffset": end, "latestOffset": None,
        "numInputRows": 500, "inputRowsPerSecond": 25.0, "processedRowsPerSecond": 199.2,
    }  # fmt: skip


TELEMETRY = "s3a://plantlake/bronze/telemetry"
EDGE = "s3a://plantlake/bronze/edge_features"


def _event(batch: int, *, seconds: int, rows: int = 50000, sources=None, run: str = RUN,
           idle: bool = False) -> dict:  # fmt: skip
    """A progress event of the bronze query, `seconds` after START_MS."""
    durations = ({"latestOffset": 12, "triggerExecution": 12} if idle else
                 {"addBatch": 2100, "commitOffsets": 40, "getBatch": 0, "latestOffset": 20,
                  "queryPlanning": 60, "triggerExecution": 2400, "walCommit": 50})  # fmt: skip
    stamp = START_MS // 1000 + seconds
    return {
        "id": QUERY, "runId": run, "name": "bronze",
        "timestamp": f"2026-11-27T15:{stamp // 60 % 60:02d}:{stamp % 60:02d}.000Z",
        "batchId": batch, "batchDuration": durations["triggerExecution"],
        "numInputRows": 0 if idle else rows, "inputRowsPerSecond": 0.0 if idle else 12000.0,
        "processedRowsPerSecond": 0.0 if idle else 20833.3, "durationMs": durations,
        "eventTime": {}, "stateOperators": [],
        "sources": copy.deepcopy(sources if sources is not None else [KAFKA_SOURCE]),
        "sink": {"description": "ForeachBatchSink", "numOutputRows": -1},
    }  # fmt: skip


def test_kafka_backlog_is_latest_minus_end_offset_over_every_partition():
    assert source_backlog(KAFKA_SOURCE) == ("offsets", 60000 + 65000)
    # PySpark's own progress objects hold offsets as JSON text.
    as_text = {**KAFKA_SOURCE, **{k: json.dumps(KAFKA_SOURCE[k]) for k in
                                  ("startOffset", "endOffset", "latestOffset")}}  # fmt: skip
    assert source_backlog(as_text) == ("offsets", 125000)


def test_kafka_without_a_latest_offset_falls_back_to_the_mean_lag_per_partition():
    source = {**KAFKA_SOURCE, "latestOffset": None}
    assert source_backlog(source) == ("offsets", 125000)  # 62,500 x 2 partitions
    assert source_backlog({**source, "metrics": {}}) is None


def test_delta_backlog_is_the_versions_from_the_end_offset_to_the_tables_latest():
    # At (v, -1) nothing of version v is read yet; Delta moves there after a version's last file.
    assert source_backlog(_delta_source("telemetry", _delta_offset(14)), 20) == ("versions", 7)
    assert source_backlog(_delta_source("telemetry", _delta_offset(4)), 3) == ("versions", 0)
    # Mid-snapshot (the first run's starting version, read file by file): that version is left.
    mid = _delta_source("telemetry", _delta_offset(3, index=1, starting=True))
    assert source_backlog(mid, 3) == ("versions", 1)
    # Delta's end marker: the version is all read.
    assert source_backlog(_delta_source("telemetry", _delta_offset(5, 2**63 - 101)), 5) == (
        "versions", 0,
    )  # fmt: skip
    # Without the table's version, Delta's progress alone says nothing.
    assert source_backlog(_delta_source("telemetry", _delta_offset(14))) is None


def test_a_delta_latest_offset_or_outstanding_files_are_used_when_reported():
    said = {**_delta_source("telemetry", _delta_offset(14)), "latestOffset": _delta_offset(20)}
    assert source_backlog(said) == ("versions", 6)
    files = {**_delta_source("telemetry", _delta_offset(14)),
             "metrics": {"numBytesOutstanding": "1048576", "numFilesOutstanding": "3"}}  # fmt: skip
    assert source_backlog(files) == ("files", 3)


def test_a_query_over_two_tables_adds_their_backlogs_and_owns_up_to_an_unknown_one():
    event = {"sources": [_delta_source("telemetry", _delta_offset(14)),
                         _delta_source("edge_features", _delta_offset(9))]}  # fmt: skip
    both = query_backlog(event, {TELEMETRY: 20, EDGE: 10})
    assert (both.amount, both.unit, both.describe()) == (9, "versions", "9 Delta versions")
    partly = query_backlog(event, {TELEMETRY: 20})
    assert partly.amount is None  # never a total that leaves a source out
    assert partly.describe() == "7 Delta versions (1 source unknown)"
    assert query_backlog({"sources": []}).describe() == "unknown"


def test_each_batch_counts_once_however_often_it_is_seen():
    tally = JobTally("bronze", START_MS)
    first, second = _event(7, seconds=3), _event(8, seconds=6, rows=30000)
    assert tally.add(first) is True
    assert tally.add(first) is False  # the same event from the next poll
    for event in (first, second):  # recentProgress overlaps what was counted
        tally.add(event)
    assert (tally.batches, tally.rows, tally.query_id) == (2, 80000, QUERY)
    assert tally.last_batch == second


def test_an_idle_trigger_is_news_but_not_a_batch():
    tally = JobTally("bronze", START_MS)
    tally.add(_event(7, seconds=3))
    idle = _event(8, seconds=13, idle=True)
    assert tally.add(idle) is True
    assert (tally.batches, tally.rows) == (1, 50000)
    assert tally.latest == idle and tally.last_batch["batchId"] == 7


def test_a_restarted_query_keeps_counting_from_its_checkpoint():
    tally = JobTally("bronze", START_MS)
    tally.add(_event(7, seconds=3))
    # The failed batch 8 never reported; the new run redoes it under a new runId.
    tally.add(_event(8, seconds=20, run="0f6c1c2e-5d8a-4d2b-9c61-2b7f0c1b7a10"))
    assert tally.batches == 2


def test_the_line_says_batches_rows_rate_last_batch_and_backlog():
    tally = JobTally("bronze", START_MS)
    assert progress_line(tally, now_ms=START_MS + 5000) == (
        "bronze: no batch finished yet (5 s); backlog unknown"
    )
    tally.add(_event(7, seconds=3))
    tally.add(_event(8, seconds=6, rows=30000))
    assert progress_line(tally, now_ms=START_MS + 10_000) == (
        "bronze: 2 batches, 80,000 rows in 10 s (8,000 rows/s); last batch 8: 30,000 rows in "
        "2.4 s; backlog 125,000 Kafka offsets"
    )
    assert summary_line(tally, now_ms=START_MS + 16_000) == (
        "bronze: done in 16.0 s: 2 batches, 80,000 rows, 5,000 rows/s"
    )


def test_the_file_payload_has_the_fields_the_workbench_reads():
    tally = JobTally("bronze", START_MS)
    tally.add(_event(7, seconds=3))
    tally.add(_event(8, seconds=6, rows=30000))
    tally.add(_event(9, seconds=16, idle=True))
    payload = file_payload(tally, running=True, now_ms=START_MS + 17_000)
    assert payload == {
        "job": "bronze", "query_id": QUERY, "batch_id": 8, "batches": 2, "rows": 80000,
        "num_input_rows": 30000, "rows_per_second": 20833.3, "batch_duration_ms": 2400,
        "backlog": 125000, "backlog_unit": "offsets", "backlog_text": "125,000 Kafka offsets",
        "started_at_ms": START_MS, "updated_at_ms": START_MS + 16_000, "running": True,
    }  # fmt: skip
    json.dumps(payload, allow_nan=False)


def test_a_rate_spark_left_out_reads_as_zero_not_nan():
    tally = JobTally("silver", START_MS)
    event = _event(3, seconds=1, sources=[_delta_source("telemetry", _delta_offset(14))])
    del event["processedRowsPerSecond"]  # Spark omits a rate that is not finite
    tally.add(event)
    assert tally.delta_paths() == [TELEMETRY]
    tally.table_versions[TELEMETRY] = 19
    payload = file_payload(tally, running=False, now_ms=START_MS + 2000)
    assert payload["rows_per_second"] == 0.0
    assert (payload["backlog"], payload["backlog_unit"]) == (6, "versions")


class _Progress:
    """What PySpark hands out: an object whose `json` is the event as JSON text."""

    def __init__(self, event: dict):
        self.json = json.dumps(event)


class _Query:
    def __init__(self, name: str):
        self.name, self.isActive, self.events = name, True, []

    @property
    def lastProgress(self):
        return _Progress(self.events[-1]) if self.events else None

    @property
    def recentProgress(self):
        return [_Progress(e) for e in self.events]


@pytest.fixture
def watched(tmp_path):
    lines: list[str] = []
    watch = QueryWatch(tmp_path, say=lines.append, every_s=0.0,
                       table_version={TELEMETRY: 12}.get)  # fmt: skip
    query = _Query("bronze")
    watch.follow([query])
    return watch, query, lines, job_progress_file(tmp_path, "bronze")


def test_the_watch_writes_the_job_file_at_each_batch_and_catches_up_skipped_ones(watched):
    watch, query, lines, path = watched
    watch.poll()
    assert not path.exists()  # nothing reported yet
    query.events += [_event(7, seconds=3), _event(8, seconds=6), _event(9, seconds=9)]
    watch.poll()  # three batches since the last poll: all counted
    written = json.loads(path.read_text())
    assert (written["batches"], written["batch_id"], written["running"]) == (3, 9, True)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    watch.report()
    assert lines and lines[-1].startswith("bronze: 3 batches, 150,000 rows")


def test_closing_the_watch_marks_the_job_stopped_and_sums_it_up(watched):
    watch, query, _, path = watched
    query.events.append(_event(7, seconds=3))
    watch.poll()
    query.events.append(_event(8, seconds=6))
    query.isActive = False
    (summary,) = watch.close()
    assert summary.startswith("bronze: done in ") and "2 batches, 100,000 rows" in summary
    written = json.loads(path.read_text())
    assert (written["batches"], written["running"]) == (2, False)


def test_the_watch_looks_up_the_delta_tables_a_query_reads_for_its_backlog(watched):
    watch, query, lines, path = watched
    query.events.append(
        _event(3, seconds=1, sources=[_delta_source("telemetry", _delta_offset(10))])
    )
    watch.poll()
    written = json.loads(path.read_text())
    assert (written["backlog"], written["backlog_text"]) == (3, "3 Delta versions")
    query.events.append(
        _event(4, seconds=4, sources=[_delta_source("telemetry", _delta_offset(12))])
    )
    watch.poll()
    assert json.loads(path.read_text())["backlog_text"] == "1 Delta version"
