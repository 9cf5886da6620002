"""Finding a Java runtime Spark 4 and Kafka 4 accept (17 or 21)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from plantlake.core.errors import InstallError

SUPPORTED = (17, 21)


def parse_major(version_output: str) -> int | None:
    """Major version from `java -version` output (`openjdk version "17.0.15"` -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


@cache
def java_home() -> Path:
    """JAVA_HOME if set, else the home of the `java` on PATH; checked for a supported version."""
    java = shutil.which("java")
    if os.environ.get("JAVA_HOME"):
        home = Path(os.environ["JAVA_HOME"])
    elif java:
        home = Path(java).resolve().parent.parent
    else:
        raise InstallError(
            "No Java runtime found: Spark and Kafka need Java 17 or 21.",
            hint="Install one (Debian: `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME.",
        )
    out = subprocess.run(
        [str(home / "bin" / "java"), "-version"], capture_output=True, text=True, check=False
    )
    major = parse_major(out.stderr + out.stdout)
    if major not in SUPPORTED:
        raise InstallError(
            f"Java at {home} is version {major}; Spark 4 and Kafka 4 need 17 or 21.",
            hint="Point JAVA_HOME at a Java 17 or 21 installation.",
        )
    return home
