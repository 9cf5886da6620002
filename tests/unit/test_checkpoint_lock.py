"""One writer per checkpoint: a second is refused with the first one's pid, and a holder that
dies (kill -9 included) leaves no stale lock."""

import signal
import subprocess
import sys
import textwrap

import pytest

from plantlake.adapters.checkpoints import (
    CheckpointBusy,
    adopt_legacy_checkpoints,
    checkpoint_lock,
    refuse_if_busy,
)
from plantlake.core.config import Settings

CHECKPOINT = "file:///lake/_checkpoints/bronze"


def _holder(home, checkpoint=CHECKPOINT):
    """A process that takes the lock, says so, and waits."""
    script = textwrap.dedent(f"""
        from plantlake.core.config import Settings
        from plantlake.adapters.checkpoints import checkpoint_lock
        settings = Settings(home={str(home)!r})
        checkpoint_lock(settings, {checkpoint!r}, "bronze").acquire()
        print("held", flush=True)
        input()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def test_a_second_writer_is_refused_with_the_pid_of_the_first(tmp_path):
    home = tmp_path
    settings = Settings(home=home)
    holder = _holder(home)
    try:
        with pytest.raises(CheckpointBusy, match=f"pid {holder.pid} ") as refused:
            checkpoint_lock(settings, CHECKPOINT, "bronze").acquire()
        assert refused.value.code == "checkpoint-busy"
        assert CHECKPOINT in refused.value.message
        # Another checkpoint is another lock.
        checkpoint_lock(
            settings, CHECKPOINT.replace("bronze", "silver"), "silver"
        ).acquire().release()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the dead holder's lock: no stale lock to clean up by hand.
    lock = checkpoint_lock(settings, CHECKPOINT, "bronze").acquire()
    lock.release()


def test_a_busy_checkpoint_is_refused_before_the_job_starts_and_a_free_one_stays_free(tmp_path):
    settings = Settings(home=tmp_path)
    holder = _holder(tmp_path, settings.lake.checkpoint_path("bronze"))
    try:
        with pytest.raises(CheckpointBusy, match=f"pid {holder.pid} "):
            refuse_if_busy(settings, "bronze")
        refuse_if_busy(settings, "silver")
        # The check let go of silver's lock: the query's own lock is taken at once.
        checkpoint_lock(settings, settings.lake.checkpoint_path("silver"), "silver").acquire(
            wait_own_s=0
        ).release()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_the_lock_file_is_private(tmp_path):
    lock = checkpoint_lock(Settings(home=tmp_path), CHECKPOINT, "bronze").acquire()
    try:
        assert lock.lock_file.stat().st_mode & 0o777 == 0o600
    finally:
        lock.release()


def test_checkpoints_of_the_old_shared_layout_move_into_the_lakes_folder(tmp_path):
    settings = Settings(home=tmp_path)
    legacy = tmp_path / "checkpoints" / "bronze"
    (legacy / "offsets").mkdir(parents=True)
    (legacy / "plantlake_writer_id").write_text("w-1")
    (tmp_path / "checkpoints" / "silver").mkdir()  # not a checkpoint of ours: left alone
    said = []
    assert adopt_legacy_checkpoints(settings, said.append) == ["bronze"]
    moved = tmp_path / "checkpoints" / "s3a" / "plantlake" / "bronze"
    assert settings.lake.checkpoint_path("bronze") == f"file://{moved}"
    assert (moved / "plantlake_writer_id").read_text() == "w-1"
    assert not legacy.exists() and (tmp_path / "checkpoints" / "silver").exists()
    assert "bronze" in said[0]
    # Nothing left to move, and an explicit checkpoint_root is never touched.
    assert adopt_legacy_checkpoints(settings, said.append) == []
