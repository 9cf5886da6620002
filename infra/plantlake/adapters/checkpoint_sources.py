"""Growing a streaming query by a source without losing its place (adapters layer).

Spark refuses to restart a query whose checkpoint names fewer sources than the query reads
("There are [1] sources in the checkpoint offsets and now there are [2]"). Each file under
`offsets/` holds one line per source, and a line `-` means "no offset yet" for that source
(Spark's OffsetSeqLog writes it for a source that has produced nothing). Appending `-` lines to
a checkpoint's offset files therefore lets the query resume the sources it had exactly where
they were, and start the new ones from their beginning. The new sources must come last in the
query's union, after the ones the checkpoint knows.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

_VOID_OFFSET = "-"
# An offset file: a version line ("v1"), the batch metadata (JSON), then one line per source.
_HEADER_LINES = 2


def sources_added(text: str, sources: int) -> str | None:
    """An offset file's text with `-` lines up to `sources`, or None when it needs none.

    Raises ValueError when the file already names more sources than that (the query lost one,
    which no rewrite can make safe)."""
    lines = text.rstrip("\n").split("\n")
    have = len(lines) - _HEADER_LINES
    if have > sources:
        raise ValueError(f"the checkpoint names {have} sources, the query reads {sources}")
    if have == sources:
        return None
    return "\n".join([*lines, *[_VOID_OFFSET] * (sources - have)])


def add_sources(spark: SparkSession, checkpoint: str, sources: int) -> int:
    """Give every offset file of `checkpoint` at least `sources` sources; returns files changed.

    A checkpoint that does not exist yet is left alone (0). Works on any Hadoop file system the
    session reaches (file://, s3a://)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    offsets = jvm.org.apache.hadoop.fs.Path(f"{checkpoint}/offsets")
    fs = offsets.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(offsets):
        return 0
    changed = 0
    for status in fs.listStatus(offsets):
        path = status.getPath()
        if not path.getName().isdigit():  # .crc and temporary files
            continue
        stream = fs.open(path)
        try:
            raw = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
        finally:
            stream.close()
        text = sources_added(bytes(raw).decode("utf-8"), sources)
        if text is None:
            continue
        out = fs.create(path, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        changed += 1
    return changed
