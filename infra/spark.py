"""The Spark session factory every plantlake job and notebook uses: Delta, S3A to MinIO, Kafka."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from plantlake.config import Settings


def spark_conf(settings: Settings, jars: list[Path]) -> dict[str, str]:
    """The Spark configuration for plantlake, as plain key/values (no JVM needed to build it)."""
    s3 = settings.s3
    conf = {
        "spark.jars": ",".join(str(j) for j in jars),
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
        "spark.hadoop.fs.s3a.aws.credentials.provider":
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        # Delta's per-commit statistics collection is costly for small streaming commits.
        "spark.databricks.delta.commitStats.collect": "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    return conf


def submit_args(settings: Settings, jars: list[Path], *, master: str) -> list[str]:
    """spark-submit options for a plantlake job: the master and the jars the JVM needs at launch.

    Everything else (S3A, Delta, credentials) the job's own `get_spark()` sets when it creates the
    session, so no secret appears on a command line.
    """
    return [
        "--master", master,
        "--jars", ",".join(str(j) for j in jars),
        "--conf", f"spark.pyspark.python={sys.executable}",
    ]  # fmt: skip


def get_spark(settings: Settings | None = None, *, app_name: str = "plantlake", master: str | None = None):
    """A SparkSession configured for plantlake.

    Under spark-submit the master and jars come from its command line and are left alone;
    elsewhere the session starts on `settings.spark.master` (local[2] by default).
    """
    from pyspark.sql import SparkSession

    from plantlake.config import load_settings
    from plantlake.jars import spark_jars
    from plantlake.services.java import java_home

    settings = settings or load_settings()
    os.environ.setdefault("JAVA_HOME", str(java_home()))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # spark-submit starts the JVM first and hands the Python driver its gateway port.
    launched_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    conf = spark_conf(settings, [] if launched_by_submit else spark_jars(settings))
    builder = SparkSession.builder.appName(app_name)
    if launched_by_submit:
        conf.pop("spark.jars")
    else:
        builder = builder.master(master or settings.spark.master).config(
            "spark.driver.memory", settings.spark.driver_memory
        )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
