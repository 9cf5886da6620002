"""The edge buffer: ordered, acknowledged-only deletion, and nothing acknowledged lost on SIGKILL."""

import signal
import subprocess
import sys
import textwrap

from plantlake.ingest.buffer import Outbox


def test_entries_come_back_in_order_and_ack_forgets_a_prefix(tmp_path):
    box = Outbox(tmp_path / "b.sqlite")
    box.append([("t", b"a", b"1"), ("t", b"b", b"2")])
    box.append([("u", b"a", b"3")])
    entries = box.peek(10)
    assert [e.value for e in entries] == [b"1", b"2", b"3"]
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    box.ack(entries[1].seq)
    assert [e.value for e in box.peek(10)] == [b"3"]
    assert box.pending()[0] == 1


def test_instance_id_and_sequence_survive_reopening(tmp_path):
    box = Outbox(tmp_path / "b.sqlite")
    box.append([("t", b"k", b"v")])
    first = box.peek(1)[0]
    box.ack(first.seq)
    instance = box.instance
    box.close()
    again = Outbox(tmp_path / "b.sqlite")
    again.append([("t", b"k", b"w")])
    assert again.instance == instance
    # Sequence numbers never repeat, even after the acknowledged rows are gone.
    assert again.peek(1)[0].seq > first.seq


def test_sigkill_loses_nothing_that_append_acknowledged(tmp_path):
    path = tmp_path / "b.sqlite"
    writer = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from plantlake.ingest.buffer import Outbox
        box = Outbox(Path({str(path)!r}))
        i = 0
        while True:
            box.append([("t", b"k", str(i + j).encode()) for j in range(50)])
            i += 50
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    acknowledged = 0
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 5000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    values = [int(e.value) for e in Outbox(path).peek(10**7)]
    assert len(values) >= acknowledged
    assert values == list(range(len(values)))  # in order, no hole


def _fill(box, topic_name, count, size=1000, start=0):
    for i in range(start, start + count, 100):
        box.append(
            [(topic_name, b"k", str(j).encode().ljust(size, b" ")) for j in range(i, i + 100)]
        )


def test_a_full_buffer_sheds_its_oldest_readings_and_says_how_many(tmp_path):
    box = Outbox(tmp_path / "b.sqlite", max_bytes=2_000_000, sheddable=("x.telemetry",))
    box.append([("x.lifecycle", b"n", b"birth"), ("x.dead_letter", b"n", b"raw")])
    sheds = []
    for i in range(0, 5000, 100):
        shed = box.append(
            [("x.telemetry", b"k", str(j).encode().ljust(1000)) for j in range(i, i + 100)]
        )
        sheds += [shed] if shed else []
    kept = box.peek(10**6)
    values = [e.value.strip() for e in kept]
    # Lifecycle and dead letter survive; the telemetry that is left is the newest, still in order.
    assert values[:2] == [b"birth", b"raw"]
    readings = [int(v) for v in values[2:]]
    assert readings == list(range(readings[0], 5000))
    assert 1000 < len(readings) < 2000  # about 1.8 MB of 1 kB records under a 2 MB cap
    assert sum(s.count for s in sheds) == readings[0]  # every dropped record was reported
    assert all(s.first_created_ms <= s.last_created_ms for s in sheds)


def test_a_buffer_with_nothing_sheddable_keeps_everything(tmp_path):
    box = Outbox(tmp_path / "b.sqlite", max_bytes=200_000, sheddable=("x.telemetry",))
    _fill(box, "x.lifecycle", 1000)
    assert box.pending()[0] == 1000


def test_the_file_shrinks_once_the_buffer_drains(tmp_path, monkeypatch):
    import plantlake.ingest.buffer as buffer

    monkeypatch.setattr(buffer, "SHRINK_EVERY_S", 0.0)
    box = Outbox(tmp_path / "b.sqlite")
    _fill(box, "x.telemetry", 20_000)
    full = box.size_bytes()
    assert full > 20_000_000
    last = box.peek(10**6)[-1].seq
    box.ack(last)
    assert box.pending()[0] == 0
    assert box.size_bytes() < full / 20


def test_ack_replaces_refused_records_in_one_transaction(tmp_path):
    box = Outbox(tmp_path / "b.sqlite")
    box.append([("t", b"k", b"1"), ("t", b"k", b"huge"), ("t", b"k", b"3")])
    entries = box.peek(10)
    box.ack(entries[1].seq, replace=[("dl", b"n", b"letter for huge")])
    assert [(e.topic, e.value) for e in box.peek(10)] == [("t", b"3"), ("dl", b"letter for huge")]


def test_the_buffer_file_is_private(tmp_path):
    box = Outbox(tmp_path / "edge" / "b.sqlite")
    box.append([("t", b"k", b"v")])
    assert box.path.stat().st_mode & 0o777 == 0o600
    assert box.path.parent.stat().st_mode & 0o777 == 0o700


def test_watermarks_survive_reopening_and_never_move_back(tmp_path):
    box = Outbox(tmp_path / "b.sqlite")
    box.save_watermarks({("a", "t"): 2000, ("a", "p"): 500})
    box.save_watermarks({("a", "t"): 1000})  # older: ignored
    box.close()
    assert Outbox(tmp_path / "b.sqlite").load_watermarks() == {("a", "t"): 2000, ("a", "p"): 500}


def test_a_buffer_of_the_record_per_row_layout_keeps_its_records_and_their_numbers(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
               " key BLOB NOT NULL, value BLOB NOT NULL, created_ms INTEGER NOT NULL)")  # fmt: skip
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('instance', 'old-edge')")
    db.executemany("INSERT INTO outbox (topic, key, value, created_ms) VALUES (?, ?, ?, 5)",
                   [("t", b"k", str(i).encode()) for i in range(10)])  # fmt: skip
    db.execute("DELETE FROM outbox WHERE seq <= 4")  # sent before the upgrade
    db.commit()
    db.close()
    box = Outbox(path)
    assert box.instance == "old-edge"
    assert [(e.seq, e.value) for e in box.peek(100)] == [
        (i + 1, str(i).encode()) for i in range(4, 10)
    ]
    box.append([("t", b"k", b"new")])
    assert box.peek(100)[-1].seq == 11  # numbering goes on after the old records
    assert box.pending()[0] == 7


def test_a_partly_acknowledged_batch_resumes_after_the_acknowledged_part(tmp_path):
    box = Outbox(tmp_path / "b.sqlite")
    box.append([("t", b"k", str(i).encode()) for i in range(10)])
    box.ack(box.peek(4)[-1].seq)
    assert [e.value for e in box.peek(3)] == [b"4", b"5", b"6"]
    assert box.pending()[0] == 6
    box.close()
    assert [e.value for e in Outbox(tmp_path / "b.sqlite").peek(100)][0] == b"4"  # kept on disk
