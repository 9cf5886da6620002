"""A job killed while writing its first checkpoint entry starts again (CI found it: a bronze run
SIGKILLed a second after it started left `offsets/.0.<uuid>.tmp`, and every later run was
refused with STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY)."""

import uuid
from pathlib import Path
from urllib.parse import urlparse

from plantlake.adapters.checkpoints import start_exclusive


def test_a_killed_writers_temporary_files_do_not_stop_the_next_start(spark, own_lake):
    source = f"{own_lake.lake.root}/source"
    spark.range(3).write.format("delta").save(source)
    checkpoint = own_lake.lake.checkpoint_path("recovery")
    folder = Path(urlparse(checkpoint).path)
    # What a run killed between writing its first offsets entry and renaming it leaves behind.
    unfinished = [folder / "offsets" / f".0.{uuid.uuid4()}.tmp",
                  folder / "commits" / f".0.{uuid.uuid4()}.tmp"]  # fmt: skip
    for path in unfinished:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('v1\n{"batchWatermarkMs":0')
    seen = []

    def write_batch(batch, batch_id: int) -> None:
        seen.extend(r.id for r in batch.collect())

    query = start_exclusive(spark.readStream.format("delta").load(source), write_batch, own_lake,
                            checkpoint, job="recovery", every=None)  # fmt: skip
    query.awaitTermination()
    assert query.exception() is None
    assert sorted(seen) == [0, 1, 2]
    assert not any(path.exists() for path in unfinished)
    assert (folder / "offsets" / "0").exists() and (folder / "commits" / "0").exists()
