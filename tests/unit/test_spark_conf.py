from pathlib import Path

from pydantic import SecretStr

from plantlake.config import S3Settings, Settings
from plantlake.spark import spark_conf, submit_args


def _settings(tmp_path) -> Settings:
    return Settings(
        home=tmp_path, cache=tmp_path,
        s3=S3Settings(endpoint="http://127.0.0.1:9000", access_key="ak", secret_key=SecretStr("sk-123")),
    )  # fmt: skip


def test_session_has_delta_s3a_and_small_shuffles(tmp_path):
    conf = spark_conf(_settings(tmp_path), [Path("/j/a.jar"), Path("/j/b.jar")])
    assert conf["spark.jars"] == "/j/a.jar,/j/b.jar"
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "sk-123"
    assert int(conf["spark.sql.shuffle.partitions"]) <= 8


def test_submit_arguments_carry_no_secret(tmp_path):
    args = submit_args(_settings(tmp_path), [Path("/j/a.jar")], master="spark://127.0.0.1:7077")
    assert args[:4] == ["--master", "spark://127.0.0.1:7077", "--jars", "/j/a.jar"]
    assert not any("sk-123" in a for a in args)
