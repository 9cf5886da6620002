"""The Spark session factory every plantlake job and notebook uses: Delta, S3A to MinIO, Kafka."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from plantlake.core.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row


def spark_conf(settings: Settings, jar_dir: Path | None) -> dict[str, str]:
    """The Spark configuration for plantlake, as plain key/values (no JVM needed to build it).

    The extra jars go on the class path rather than in `spark.jars`: `spark.jars` copies all of
    them (700 MB, mostly the AWS SDK bundle) into a temp folder at every session start.
    """
    s3 = settings.s3
    conf = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(settings.home / "spark-warehouse"),
        "spark.pyspark.python": sys.executable,
        # S3A to MinIO: path-style addressing, plain HTTP on loopback, static keys.
        "spark.hadoop.fs.s3a.endpoint": s3.endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": s3.region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(s3.secure).lower(),
        "spark.hadoop.fs.s3a.access.key": s3.access_key,
        "spark.hadoop.fs.s3a.secret.key": s3.secret_key.get_secret_value(),
        "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        # Delta's per-commit statistics collection is costly for small streaming commits.
        "spark.databricks.delta.commitStats.collect": "false",
        # Delta rebuilds a table's state with 50 tasks by default; on 2 cores that dominated
        # each micro-batch (111 s -> 47 s for one silver batch with this).
        "spark.databricks.delta.snapshotPartitions": str(settings.spark.shuffle_partitions),
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Queries sharing a driver (features and scoring, or notebooks running several) share
        # the cores by pool, so one long batch does not hold the others back (see scheduler_pool).
        "spark.scheduler.mode": "FAIR",
        "spark.driver.host": settings.spark.cluster_host,
        "spark.driver.bindAddress": settings.spark.cluster_host,
    }
    if jar_dir is not None:
        conf["spark.driver.extraClassPath"] = f"{jar_dir}/*"
        conf["spark.executor.extraClassPath"] = f"{jar_dir}/*"
    return conf


def is_loopback_master(master: str) -> bool:
    """Whether executors run on this machine, so they can read the jars from the local cache."""
    return master.startswith("local") or any(
        master.startswith(f"spark://{host}") for host in ("127.", "localhost")
    )


def submit_args(settings: Settings, jar_dir: Path, *, master: str) -> list[str]:
    """spark-submit options for a plantlake job: the master and the jars the JVMs need at launch.

    On a loopback cluster the jars are put on the class path from the cache; a remote cluster
    gets them shipped with --jars. Everything else (S3A, Delta, credentials) the job's own
    `get_spark()` sets when it creates the session, so no secret appears on a command line.
    """
    # The driver JVM is started by spark-submit, before get_spark() could size its heap.
    args = [
        "--master", master, "--driver-memory", settings.spark.driver_memory,
        "--conf", f"spark.pyspark.python={sys.executable}",
    ]  # fmt: skip
    if is_loopback_master(master):
        return args + [
            "--driver-class-path", f"{jar_dir}/*",
            "--conf", f"spark.executor.extraClassPath={jar_dir}/*",
        ]  # fmt: skip
    return args + ["--jars", ",".join(str(j) for j in sorted(jar_dir.glob("*.jar")))]


def get_spark(
    settings: Settings | None = None, *, app_name: str = "plantlake", master: str | None = None
):
    """A SparkSession configured for plantlake.

    Under spark-submit the master and jars come from its command line and are left alone;
    elsewhere the session starts on `settings.spark.master` (local[2,4] by default).
    """
    from pyspark.sql import SparkSession

    from plantlake.core.config import load_settings
    from plantlake.services.jars import installed_spark_jar_dir
    from plantlake.services.java import java_home

    settings = settings or load_settings()
    os.environ.setdefault("JAVA_HOME", str(java_home()))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # This machine's host name may resolve to a non-loopback address Spark would bind to.
    os.environ.setdefault("SPARK_LOCAL_IP", settings.spark.cluster_host)
    # spark-submit starts the JVM first and hands the Python driver its gateway port.
    launched_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    conf = spark_conf(settings, None if launched_by_submit else installed_spark_jar_dir(settings))
    builder = SparkSession.builder.appName(app_name)
    if not launched_by_submit:
        builder = builder.master(master or settings.spark.master).config(
            "spark.driver.memory", settings.spark.driver_memory
        )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def scheduler_pool(spark, name: str) -> Iterator[None]:
    """Run the Spark jobs of queries started inside in the FAIR scheduler pool `name`.

    A streaming query's thread inherits the local properties of the thread that starts it,
    so its micro-batches (foreachBatch included) run in the pool; the caller's are restored.
    """
    context = spark.sparkContext
    previous = context.getLocalProperty("spark.scheduler.pool")
    context.setLocalProperty("spark.scheduler.pool", name)
    try:
        yield
    finally:
        context.setLocalProperty("spark.scheduler.pool", previous)


def register_lake_tables(spark, settings: Settings) -> list[str]:
    """Make every existing lake table addressable by name (`spark.table("silver.telemetry")`).

    The names live in this session's catalog only, pointing at the Delta tables in the lake;
    tables not written yet are left out. Returns the names registered.
    """
    from delta.tables import DeltaTable

    from plantlake.core.contracts import TABLES

    registered = []
    for ref in TABLES:
        path = ref.path(settings.lake)
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {ref.layer}")
        spark.sql(f"CREATE TABLE IF NOT EXISTS {ref.name} USING DELTA LOCATION '{path}'")
        registered.append(ref.name)
    return registered


def first_row(frame: DataFrame) -> Row:
    """The first row of a frame that always has one: a global aggregate, DESCRIBE, OPTIMIZE or
    a MERGE's metrics. An empty result there is a bug, so it fails loudly instead of None."""
    row = frame.first()
    if row is None:
        raise AssertionError("expected a row: a global aggregate always returns one")
    return row
