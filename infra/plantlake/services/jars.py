"""JVM artifacts, resolved once with Maven into the cache and never at run time."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from plantlake.core.config import Settings
from plantlake.core.errors import InstallError
from plantlake.services.process import Report, run_logged
from plantlake.services.versions import Versions, versions

MAVEN_DIR = Path(__file__).parent / "maven"
COMPLETE = ".complete"


def spark_properties(v: Versions) -> dict[str, str]:
    return {
        "spark.version": v.spark,
        "delta.version": v.delta,
        "hadoop.version": v.hadoop,
        "awssdk.version": v.awssdk,
    }


def kafka_properties(v: Versions) -> dict[str, str]:
    return {"kafka.version": v.kafka, "log4j.version": v.kafka_log4j}


def _jar_dir(settings: Settings, kind: str, properties: dict[str, str]) -> Path:
    # The folder name changes with any pinned version, so a bump never mixes old and new jars.
    key = hashlib.sha256(repr(sorted(properties.items())).encode()).hexdigest()[:12]
    return settings.cache / "jars" / f"{kind}-{key}"


def spark_jar_dir(settings: Settings) -> Path:
    return _jar_dir(settings, "spark", spark_properties(versions()))


def kafka_jar_dir(settings: Settings) -> Path:
    return _jar_dir(settings, "kafka", kafka_properties(versions()))


def resolve(
    settings: Settings, *, pom: str, target: Path, properties: dict[str, str], report: Report
) -> Path:
    """Copy a pom's runtime dependencies into `target` with Maven (skipped when done before)."""
    if (target / COMPLETE).exists():
        return target
    if shutil.which("mvn") is None:
        raise InstallError(
            "Maven (`mvn`) is needed to fetch plantlake's JVM artifacts and is not on PATH.",
            hint="Install it (Debian: `apt-get install maven`) and run `plantlake up` again.",
        )
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    argv = [
        # `package` runs the pom's enforcer (every property given) and then copy-dependencies.
        "mvn", "-B", "-Dstyle.color=never", "-f", str(MAVEN_DIR / pom), "package",
        f"-Dmaven.repo.local={settings.cache / 'm2'}", f"-Doutput.dir={partial}",
        *(f"-D{k}={v}" for k, v in properties.items()),
    ]  # fmt: skip
    run_logged(
        argv,
        log=settings.logs / "install-maven.log",
        what=f"Resolving JVM artifacts from {pom}",
        hint="Check that Maven Central is reachable, then run `plantlake up` again.",
        report=report,
    )
    if not any(partial.glob("*.jar")):
        raise InstallError(
            f"Maven resolved no jars from {pom}.", log=settings.logs / "install-maven.log"
        )
    (partial / COMPLETE).touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def ensure_spark_jars(settings: Settings, report: Report) -> Path:
    return resolve(
        settings,
        pom="spark-jars.pom.xml",
        target=spark_jar_dir(settings),
        properties=spark_properties(versions()),
        report=report,
    )


def ensure_kafka_jars(settings: Settings, report: Report) -> Path:
    return resolve(
        settings,
        pom="kafka-broker.pom.xml",
        target=kafka_jar_dir(settings),
        properties=kafka_properties(versions()),
        report=report,
    )


def installed_spark_jar_dir(settings: Settings) -> Path:
    """The folder of extra jars every plantlake Spark session loads (Delta, Kafka source, S3A)."""
    target = spark_jar_dir(settings)
    if not (target / COMPLETE).exists():
        raise InstallError(
            f"Spark's extra jars are not installed in {target}.",
            hint="Run `plantlake up` (or `plantlake install`) once; it resolves them with Maven.",
        )
    return target


def spark_jars(settings: Settings) -> list[Path]:
    return sorted(installed_spark_jar_dir(settings).glob("*.jar"))
