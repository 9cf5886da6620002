from pathlib import Path

from pydantic import SecretStr

from plantlake.adapters.spark import spark_conf, submit_args
from plantlake.core.config import S3Settings, Settings


def _settings(tmp_path) -> Settings:
    return Settings(
        home=tmp_path, cache=tmp_path,
        s3=S3Settings(endpoint="http://127.0.0.1:9000", access_key="ak", secret_key=SecretStr("sk-123")),
    )  # fmt: skip


def test_session_has_delta_s3a_and_small_shuffles(tmp_path):
    conf = spark_conf(_settings(tmp_path), Path("/j"))
    # On the class path, not spark.jars, which would copy 700 MB at every session start.
    assert "spark.jars" not in conf
    assert conf["spark.driver.extraClassPath"] == "/j/*"
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "sk-123"
    assert int(conf["spark.sql.shuffle.partitions"]) <= 8
    assert conf["spark.scheduler.mode"] == "FAIR"


def test_submit_to_a_loopback_cluster_uses_the_cached_jars_and_carries_no_secret(tmp_path):
    args = submit_args(_settings(tmp_path), tmp_path, master="spark://127.0.0.1:7077")
    assert args[:2] == ["--master", "spark://127.0.0.1:7077"]
    assert args[args.index("--driver-memory") + 1] == "2g"
    assert args[args.index("--driver-class-path") + 1] == f"{tmp_path}/*"
    assert f"spark.executor.extraClassPath={tmp_path}/*" in args
    assert not any("sk-123" in a for a in args)


def test_submit_to_a_remote_cluster_ships_the_jars(tmp_path):
    (tmp_path / "a.jar").touch()
    (tmp_path / "b.jar").touch()
    args = submit_args(_settings(tmp_path), tmp_path, master="spark://spark.plant:7077")
    assert args[args.index("--jars") + 1] == f"{tmp_path}/a.jar,{tmp_path}/b.jar"
    assert "--driver-class-path" not in args
