"""The review store on the real MinIO: concurrent workbench writers (separate processes) lose no
decision and insert a double submit once, because delta-rs commits with conditional writes."""

import logging
import multiprocessing
import uuid

import pytest

from plantlake.core.contracts import SILVER_QUARANTINE_REVIEWS
from plantlake.core.errors import SinkError
from plantlake.lake.tables import delta_uri
from plantlake.services.minio import s3_client
from plantlake.workbench import review_store
from plantlake.workbench.review_store import Decision, ReadingKey, ReviewStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PER_WRITER = 40
TOPIC = "plantlake.telemetry"


@pytest.fixture(scope="module")
def settings():
    """The store needs MinIO alone: start just that (idempotent), not the whole stack."""
    from rich.console import Console

    from plantlake.app.local_secrets import ensure_local_secrets
    from plantlake.core.config import load_settings
    from plantlake.services import stack

    loaded = ensure_local_secrets(load_settings())
    (minio,) = stack.up(loaded, ("minio",), Console(stderr=True))
    if not minio.up:
        pytest.fail(f"MinIO is down after `plantlake up minio`: {minio.detail}")
    return loaded


@pytest.fixture
def review_lake(settings):
    """Settings whose lake is a fresh prefix of the real bucket, removed afterwards."""
    bucket = "plantlake"
    prefix = f"test-review-store-{uuid.uuid4().hex[:10]}"
    lake = settings.lake.model_copy(update={"root": f"s3a://{bucket}/{prefix}"})
    yield settings.model_copy(update={"lake": lake})
    client = s3_client(settings)
    for item in client.list_objects(bucket, prefix=prefix + "/", recursive=True):
        client.remove_object(bucket, item.object_name)


def _decision(decision_id: str, offset: int, reviewer: str) -> Decision:
    return Decision(
        decision_id=decision_id,
        reading=ReadingKey(TOPIC, 0, offset),
        asset="site1/line1/pump1",
        sensor="bearing_temp",
        event_time_ms=1_700_000_000_000 + offset,
        decision="release",
        note=None,
        reviewer=reviewer,
        supersedes=None,
    )


class _RaceCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lost = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "lost a race" in record.getMessage():
            self.lost += 1


def _writer(settings, writer: int, start, done, results) -> None:
    """One workbench process: PER_WRITER decisions one by one, then the shared double submit."""
    races = _RaceCounter()
    logger = logging.getLogger(review_store.__name__)
    logger.addHandler(races)
    logger.setLevel(logging.DEBUG)
    store = ReviewStore(settings)
    start.wait()
    inserted = 0
    for i in range(PER_WRITER):
        offset = writer * 1000 + i
        inserted += store.decide([_decision(f"w{writer}-{i}", offset, f"planner{writer}")]).inserted
    done.wait()  # both submit the same decision at once
    shared = store.decide([_decision("shared", 99_999, f"planner{writer}")])
    results.put((writer, inserted, shared.inserted, shared.duplicates, races.lost))


def test_concurrent_writers_lose_no_decision_and_insert_a_double_submit_once(review_lake):
    spawn = multiprocessing.get_context("spawn")
    start, done, results = spawn.Barrier(2), spawn.Barrier(2), spawn.Queue()
    writers = [
        spawn.Process(target=_writer, args=(review_lake, n, start, done, results)) for n in (1, 2)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=600)
    assert [p.exitcode for p in writers] == [0, 0]
    reports = sorted(results.get(timeout=5) for _ in writers)

    assert [inserted for _, inserted, *_ in reports] == [PER_WRITER, PER_WRITER]
    # The double submit: one writer inserted it, the other found it stored.
    assert sorted((ins, dup) for _, _, ins, dup, _ in reports) == [(0, 1), (1, 0)]
    # The writers did race: some commits lost to the other writer and were redone.
    assert sum(lost for *_, lost in reports) > 0

    from deltalake import DeltaTable

    path = delta_uri(SILVER_QUARANTINE_REVIEWS.path(review_lake.lake))
    table = DeltaTable(path, storage_options=review_store.store_options(review_lake))
    ids = table.to_pyarrow_table(columns=["decision_id"]).column(0).to_pylist()
    expected = {f"w{w}-{i}" for w in (1, 2) for i in range(PER_WRITER)} | {"shared"}
    assert len(ids) == 2 * PER_WRITER + 1
    assert set(ids) == expected
    assert len(ReviewStore(review_lake).latest()) == 2 * PER_WRITER + 1


def test_commits_depend_on_minio_conditional_writes(review_lake, monkeypatch):
    """With S3 conditional put switched off, delta-rs refuses to commit at all: every commit of
    the store is a put-if-absent (`If-None-Match: *`), never a blind overwrite."""
    conditional = review_store.store_options
    monkeypatch.setattr(
        review_store,
        "store_options",
        lambda settings: {**conditional(settings), "AWS_CONDITIONAL_PUT": "disabled"},
    )
    with pytest.raises(SinkError, match="PutMode::Create"):
        ReviewStore(review_lake).decide([_decision("d1", 1, "ann")])
