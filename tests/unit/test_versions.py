import tomllib

import pytest

from plantlake.core.errors import ConfigError
from plantlake.services.versions import PYPROJECT, parse_versions, versions


def _pins() -> dict[str, str]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return {d.split("==")[0]: d.split("==")[1] for d in deps if "==" in d}


def test_jvm_pins_agree_with_python_pins():
    pins = _pins()
    v = versions()
    # spark-sql-kafka must be the same Spark as pyspark; Delta jars the same as delta-spark.
    assert v.spark == pins["pyspark"]
    assert v.delta == pins["delta-spark"]


def test_hadoop_aws_matches_the_hadoop_client_inside_pyspark():
    from pathlib import Path

    import pyspark

    jars = {
        p.name for p in (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar")
    }
    assert jars == {f"hadoop-client-api-{versions().hadoop}.jar"}


def test_versions_table_must_be_complete():
    with pytest.raises(ConfigError, match="missing"):
        parse_versions({"tool": {"plantlake": {"versions": {"spark": "4.2.0"}}}})
    with pytest.raises(ConfigError, match="no \\[tool.plantlake.versions\\]"):
        parse_versions({})
