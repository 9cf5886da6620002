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
