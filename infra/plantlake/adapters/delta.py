"""Adapters between jobs and storage: Kafka streams in, Delta tables out, exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from plantlake.adapters.spark import first_row
from plantlake.core.config import LakeSettings, Settings
from plantlake.core.contracts import TableRef
from plantlake.core.errors import SourceError


def read_kafka_stream(spark: SparkSession, settings: Settings, topic: str, *, max_per_trigger: int):
    """A streaming DataFrame over one Kafka topic, from its earliest retained offset."""
    return (
        spark.readStream.format("kafka")
        .options(**settings.kafka.spark_options())
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", max_per_trigger)
        .option("includeHeaders", "true")
        .load()
    )


def writer_id(spark: SparkSession, checkpoint: str) -> str:
    """A stable id for the writer behind one checkpoint, kept in the checkpoint folder.

    Delta skips a (txnAppId, txnVersion) it has already committed. Batch ids restart at 0 when a
    checkpoint is reset, so the app id must change with the checkpoint, or new data would be
    skipped as "already written".
    """
    jvm = spark.sparkContext._jvm
    if jvm is None:  # a Spark Connect session has no JVM gateway; plantlake's jobs are classic
        raise AssertionError("writer_id needs a classic Spark session")
    path = jvm.org.apache.hadoop.fs.Path(f"{checkpoint}/plantlake_writer_id")
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if fs.exists(path):
        stream = fs.open(path)
        try:
            return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8").strip()
        finally:
            stream.close()
    new_id = str(uuid.uuid4())
    out = fs.create(path, False)
    try:
        out.write(bytearray(new_id.encode()))
    finally:
        out.close()
    return new_id


def append_once(
    df: DataFrame,
    path: str,
    *,
    app_id: str,
    batch_id: int,
    properties: Mapping[str, str] | None = None,
) -> None:
    """Append a micro-batch to a Delta table so that a retried batch is not written twice.

    New nullable columns are merged into the table's schema (additive evolution, as when the
    record gains a field); a changed or removed column still fails the write. `properties`
    (`TableRef.properties`) are set when the write creates the table; Delta ignores them after.
    """
    (
        df.write.format("delta")
        .mode("append")
        .options(**(properties or {}))
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
        .option("mergeSchema", "true")
        .save(path)
    )


def append_rows(df: DataFrame, path: str) -> None:
    """Append rows to a Delta table as their own commit, for a writer whose rows carry their own
    proof of being written (an anti-join on the table's key before the append)."""
    df.write.format("delta").mode("append").save(path)


def overwrite_once(df: DataFrame, path: str, *, app_id: str, batch_id: int) -> None:
    """Replace a Delta table's rows with a micro-batch's, skipped when the batch was committed."""
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
        .save(path)
    )


_TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION = "spark.databricks.delta.write.txnVersion"


@contextmanager
def idempotent_dml(session: SparkSession, *, app_id: str, batch_id: int) -> Iterator[None]:
    """Make the Delta DML inside (MERGE) a no-op when (app_id, batch_id) already committed.

    DML has no writer options, so Delta reads the pair from session confs; in foreachBatch the
    session is the query's own clone, so other queries' writes never see them.
    """
    session.conf.set(_TXN_APP_ID, app_id)
    session.conf.set(_TXN_VERSION, str(batch_id))
    try:
        yield
    finally:
        session.conf.unset(_TXN_APP_ID)
        session.conf.unset(_TXN_VERSION)


def table_exists(spark: SparkSession, path: str) -> bool:
    """Whether `path` holds a Delta table (a folder without a _delta_log is not one)."""
    return DeltaTable.isDeltaTable(spark, path)


def upsert(
    rows: DataFrame,
    path: str,
    *,
    on: str,
    app_id: str | None,
    batch_id: int = 0,
    when_matched: str | None = None,
    update: Mapping[str, str] | None = None,
) -> None:
    """Create the table from `rows` when it is missing, else MERGE them into it on `on`
    (`t.` the table, `s.` the rows): a matched row is updated (every column, or only `update`)
    where `when_matched` holds, an unmatched one inserted.

    With `app_id`, a retried (app_id, batch_id) changes nothing; without, each call is its own
    write (a batch job that recomputes what it writes).
    """
    session = rows.sparkSession
    if not table_exists(session, path):
        append_once(rows, path, app_id=app_id or f"upsert:{uuid.uuid4()}", batch_id=batch_id)
        return
    guard = idempotent_dml(session, app_id=app_id, batch_id=batch_id) if app_id else nullcontext()
    with guard:
        merge = DeltaTable.forPath(session, path).alias("t").merge(rows.alias("s"), on)
        if update is None:
            merge = merge.whenMatchedUpdateAll(condition=when_matched)
        else:
            merge = merge.whenMatchedUpdate(condition=when_matched, set=dict(update))
        merge.whenNotMatchedInsertAll().execute()


def append_unless_empty(
    df: DataFrame, path: str, *, empty: bool, app_id: str, batch_id: int
) -> None:
    """`append_once`, except that an `empty` micro-batch commits nothing once the table exists.

    Each commit costs seconds on S3 whatever its size. Skipping a batch id is safe: Delta skips
    only (app id, batch id) pairs at or below the last one the table committed.
    """
    if empty and table_exists(df.sparkSession, path):
        return
    append_once(df, path, app_id=app_id, batch_id=batch_id)


def require_table(spark: SparkSession, ref: TableRef, lake: LakeSettings, *, hint: str) -> str:
    """The table's path; raises SourceError naming it and what to run when it is not there yet."""
    path = ref.path(lake)
    if not table_exists(spark, path):
        raise SourceError(f"{ref.name} is not a Delta table at {path}.", hint=hint)
    return path


def add_missing_columns(spark: SparkSession, path: str, columns: Sequence[str]) -> list[str]:
    """Add to the table at `path` the contract columns ("name type") it lacks, as nullable
    columns (a table from before they were declared); returns the ones added."""
    have = set(read_delta(spark, path).columns)
    missing = [c for c in columns if c.split(" ", 1)[0] not in have]
    if missing:
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({', '.join(missing)})")
    return missing


def update_matched(
    rows: DataFrame, path: str, *, on: str, update: Mapping[str, str], when_matched: str | None
) -> None:
    """MERGE `rows` into the table at `path` on `on` (`t.` the table, `s.` the rows), setting the
    `update` columns of matched rows where `when_matched` holds; unmatched rows are ignored."""
    target = DeltaTable.forPath(rows.sparkSession, path).alias("t")
    merge = target.merge(rows.alias("s"), on)
    merge.whenMatchedUpdate(condition=when_matched, set=dict(update)).execute()


def delta_table_id(spark: SparkSession, path: str) -> str:
    """The table's Delta id, which a table recreated at the same path does not keep."""
    return str(first_row(DeltaTable.forPath(spark, path).detail().select("id"))[0])


def read_checkpoint_note(spark: SparkSession, path: str) -> str | None:
    """The text of a small file a job keeps beside its streaming checkpoint, or None."""
    jvm = spark.sparkContext._jvm
    if jvm is None:  # see writer_id
        raise AssertionError("read_checkpoint_note needs a classic Spark session")
    note = jvm.org.apache.hadoop.fs.Path(path)
    fs = note.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(note):
        return None
    stream = fs.open(note)
    try:
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def write_checkpoint_note(spark: SparkSession, path: str, text: str) -> None:
    """Replace the small file at `path` (beside a checkpoint) with `text`."""
    jvm = spark.sparkContext._jvm
    if jvm is None:  # see writer_id
        raise AssertionError("write_checkpoint_note needs a classic Spark session")
    note = jvm.org.apache.hadoop.fs.Path(path)
    out = note.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).create(note, True)
    try:
        out.write(bytearray(text.encode()))
    finally:
        out.close()


def delta_version(spark: SparkSession, path: str) -> int:
    """The table's current Delta version (what a reader records as lineage)."""
    return int(first_row(DeltaTable.forPath(spark, path).history(1).select("version"))[0])


def read_delta(spark: SparkSession, path: str, *, version: int | None = None) -> DataFrame:
    """The table at `path`, as of Delta `version` when given (what lineage recorded)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)
