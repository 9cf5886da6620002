"""The workbench's review store on a local (file://) lake: idempotent by id, stale decisions
refused whole, latest decision per reading, work-order feedback."""

import datetime as dt
import logging

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import GOLD_WORK_ORDER_FEEDBACK, SILVER_QUARANTINE_REVIEWS
from plantlake.lake.arrow_schema import contract_schema
from plantlake.workbench import review_store
from plantlake.workbench.review_store import (
    DecideResult,
    Decision,
    Feedback,
    InvalidDecision,
    ReadingKey,
    ReviewStore,
    StaleDecision,
)

TOPIC = "plantlake.telemetry"


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path / "home", lake=LakeSettings(root=f"file://{tmp_path}/lake"))


@pytest.fixture
def store(settings):
    return ReviewStore(settings)


def reading(offset: int, partition: int = 0) -> ReadingKey:
    return ReadingKey(TOPIC, partition, offset)


def decision(decision_id, offset, kind="release", *, supersedes=None, note=None, reviewer="ann"):
    return Decision(
        decision_id=decision_id,
        reading=reading(offset),
        asset="site1/line1/pump1",
        sensor="bearing_temp",
        event_time_ms=1_700_000_000_000 + offset,
        decision=kind,
        note=note,
        reviewer=reviewer,
        supersedes=supersedes,
    )


def stored_rows(settings, ref=SILVER_QUARANTINE_REVIEWS):
    return DeltaTable(ref.path(settings.lake)).to_pyarrow_table().to_pylist()


def test_a_decision_is_stored_with_the_contract_columns(store, settings):
    before = dt.datetime.now(dt.UTC)
    result = store.decide([decision("d1", 7, "note", note="wiring loose")])
    assert result == DecideResult(inserted=1, duplicates=0)
    table = DeltaTable(SILVER_QUARANTINE_REVIEWS.path(settings.lake))
    assert table.schema().to_arrow() == contract_schema(SILVER_QUARANTINE_REVIEWS)
    (row,) = stored_rows(settings)
    assert row["decision_id"] == "d1"
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == (TOPIC, 0, 7)
    assert (row["decision"], row["note"], row["reviewer"]) == ("note", "wiring loose", "ann")
    assert row["supersedes"] is None
    assert before <= row["decided_at"] <= dt.datetime.now(dt.UTC)


def test_a_double_submit_inserts_once(store, settings):
    first = store.decide([decision("d1", 7), decision("d2", 8)])
    again = store.decide([decision("d1", 7), decision("d2", 8)])
    assert first == DecideResult(inserted=2, duplicates=0)
    assert again == DecideResult(inserted=0, duplicates=2)
    # A repeat inside one batch is a double submit too.
    assert store.decide([decision("d3", 9), decision("d3", 9)]) == DecideResult(1, 1)
    assert sorted(r["decision_id"] for r in stored_rows(settings)) == ["d1", "d2", "d3"]
    # Versions: the create and two inserts; a batch of duplicates commits nothing.
    assert DeltaTable(SILVER_QUARANTINE_REVIEWS.path(settings.lake)).version() == 2


def test_a_stale_decision_is_refused_and_writes_nothing(store, settings):
    store.decide([decision("d1", 7)])
    # Bob's page showed the reading undecided; Ann released it since.
    with pytest.raises(StaleDecision) as refused:
        store.decide([decision("d2", 7, "confirm_fault", reviewer="bob")])
    assert refused.value.code == "stale-decision"
    assert f"{TOPIC}/0@7" in str(refused.value) and "d1" in str(refused.value)
    # Superseding what one did not see is stale too.
    with pytest.raises(StaleDecision):
        store.decide([decision("d2", 7, "confirm_fault", supersedes="d0")])
    assert [r["decision_id"] for r in stored_rows(settings)] == ["d1"]
    assert store.decide([decision("d2", 7, "confirm_fault", supersedes="d1")]).inserted == 1
    assert store.latest()[reading(7)]["decision_id"] == "d2"


def test_a_resubmitted_decision_is_a_duplicate_not_stale(store):
    store.decide([decision("d1", 7)])
    store.decide([decision("d2", 7, "confirm_fault", supersedes="d1")])
    # The first submit's retry arrives after d2: d1 is stored, so it is skipped.
    assert store.decide([decision("d1", 7)]) == DecideResult(inserted=0, duplicates=1)


def test_a_batch_is_all_or_nothing(store, settings):
    store.decide([decision("d1", 7)])
    batch = [decision("b1", 10), decision("b2", 11), decision("b3", 7), decision("b4", 12)]
    with pytest.raises(StaleDecision):
        store.decide(batch)  # b3 did not see d1
    assert [r["decision_id"] for r in stored_rows(settings)] == ["d1"]
    assert store.latest([reading(10), reading(11), reading(12)]) == {}
    fixed = [*batch[:2], decision("b3", 7, supersedes="d1"), batch[3]]
    assert store.decide(fixed) == DecideResult(inserted=4, duplicates=0)


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (decision("d1", 7, "delete"), "not one of"),
        (decision("d1", 7, reviewer=" "), "no reviewer"),
        (decision("d1", 7, "note", note=""), "note without text"),
        (decision("", 7), "decision_id"),
    ],
)
def test_invalid_decisions_are_refused(store, bad, what):
    with pytest.raises(InvalidDecision, match=what):
        store.decide([decision("ok", 1), bad])
    assert store.latest() == {}


def test_two_decisions_on_one_reading_in_a_batch_are_refused(store):
    with pytest.raises(InvalidDecision, match="Two decisions"):
        store.decide([decision("d1", 7), decision("d2", 7, "confirm_fault")])


def _append_reviews(settings, rows):
    """Rows as another host would have written them (its own decided_at)."""
    defaults = decision("x", 0)
    records = [
        {
            "decision_id": decision_id,
            "kafka_topic": TOPIC,
            "kafka_partition": 0,
            "kafka_offset": offset,
            "asset": defaults.asset,
            "sensor": defaults.sensor,
            "event_time_ms": defaults.event_time_ms,
            "decision": "note",
            "note": "n",
            "reviewer": "ann",
            "decided_at": decided_at,
            "supersedes": None,
        }
        for decision_id, offset, decided_at in rows
    ]
    table = pa.Table.from_pylist(records, schema=contract_schema(SILVER_QUARANTINE_REVIEWS))
    write_deltalake(SILVER_QUARANTINE_REVIEWS.path(settings.lake), table, mode="append")


def test_latest_is_by_decision_time_then_decision_id(store, settings):
    t0 = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    minute = dt.timedelta(minutes=1)
    _append_reviews(
        settings,
        [
            ("b-late", 1, t0 + minute),
            ("a-early", 1, t0),
            ("a-tie", 2, t0),
            ("c-tie", 2, t0),
            ("only", 3, t0),
        ],
    )
    latest = store.latest()
    assert {key.kafka_offset: row["decision_id"] for key, row in latest.items()} == {
        1: "b-late",
        2: "c-tie",
        3: "only",
    }
    assert set(store.latest([reading(2), reading(99)])) == {reading(2)}


def test_a_superseding_decision_sorts_after_one_stamped_by_a_clock_ahead(store, settings):
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    _append_reviews(settings, [("z-ahead", 7, ahead)])
    store.decide([decision("a-now", 7, "confirm_fault", supersedes="z-ahead")])
    latest = store.latest([reading(7)])[reading(7)]
    assert latest["decision_id"] == "a-now"
    assert latest["decided_at"] > ahead


def test_a_commit_that_loses_a_race_is_redone_on_the_new_version(
    store, settings, monkeypatch, caplog
):
    """Another writer commits between this one's read and its commit: for another reading both
    land; for the same reading the redo sees the new decision and refuses."""
    caplog.set_level(logging.DEBUG, logger=review_store.__name__)
    other = ReviewStore(settings)
    insert = review_store._insert_new
    racing: list[Decision] = []

    def insert_after_a_rival(table, records, ref):
        if racing:
            other.decide([racing.pop()])
        return insert(table, records, ref)

    monkeypatch.setattr(review_store, "_insert_new", insert_after_a_rival)
    racing.append(decision("rival-1", 20, reviewer="bob"))
    assert store.decide([decision("mine-1", 21)]).inserted == 1
    assert "commit 1 lost a race" in caplog.text
    assert {r["decision_id"] for r in stored_rows(settings)} == {"rival-1", "mine-1"}

    racing.append(decision("rival-2", 22, reviewer="bob"))
    with pytest.raises(StaleDecision, match="rival-2"):
        store.decide([decision("mine-2", 22)])
    assert "mine-2" not in {r["decision_id"] for r in stored_rows(settings)}


def test_a_writer_that_always_loses_gives_up_with_a_sink_error(store, monkeypatch):
    from deltalake.exceptions import CommitFailedError

    def always_lose(table, records, ref):
        raise CommitFailedError("Failed to commit transaction: 0")

    monkeypatch.setattr(review_store, "_insert_new", always_lose)
    monkeypatch.setattr(review_store, "COMMIT_ATTEMPTS", 3)
    monkeypatch.setattr(review_store, "_BACKOFF_S", (0.0, 0.0))
    with pytest.raises(review_store.SinkError, match="lost 3 commit races"):
        store.decide([decision("d1", 7)])


def test_feedback_is_stored_once_per_id(store, settings):
    assert store.feedback().columns.tolist() == list(GOLD_WORK_ORDER_FEEDBACK.column_names)
    assert store.feedback().empty
    verdict = Feedback("f1", "wo-1", "site1/line1/pump1", "bearing_wear", "false_alarm",
                       "greased last week", "ann")  # fmt: skip
    assert store.record_feedback(verdict) is True
    assert store.record_feedback(verdict) is False
    assert store.record_feedback(Feedback("f2", "wo-1", "site1/line1/pump1", None, "done",
                                          None, "bob")) is True  # fmt: skip
    frame = store.feedback()
    assert frame["feedback_id"].tolist() == ["f1", "f2"]
    first = frame.iloc[0]
    assert (first["verdict"], first["note"], first["planner"]) == (
        "false_alarm",
        "greased last week",
        "ann",
    )
    assert first["decided_at_ms"] == int(first["decided_at"].timestamp() * 1000)
    with pytest.raises(InvalidDecision, match="not one of"):
        store.record_feedback(Feedback("f3", "wo-1", "a", None, "maybe", None, "ann"))
    with pytest.raises(InvalidDecision, match="no planner"):
        store.record_feedback(Feedback("f3", "wo-1", "a", None, "done", None, ""))
    assert len(stored_rows(settings, GOLD_WORK_ORDER_FEEDBACK)) == 2


def test_store_options_use_conditional_writes_on_s3(settings):
    from plantlake.workbench.review_store import store_options

    assert store_options(settings) == {}  # file:// lake
    s3 = settings.model_copy(update={"lake": LakeSettings(root="s3a://plantlake/x")})
    options = store_options(s3)
    assert options["AWS_S3_ALLOW_UNSAFE_RENAME"] == "false"
    assert options["AWS_CONDITIONAL_PUT"] == "etag"
    assert options["AWS_ENDPOINT_URL"] == s3.s3.endpoint
