"""A Spark standalone master and worker, run from pyspark's own launcher (bin/spark-class)."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

from plantlake.services.base import Service
from plantlake.services.java import java_home
from plantlake.services.process import Launch


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_env(settings) -> dict[str, str]:
    """Environment for Spark daemons and spark-submit: this Python, this Java, loopback only."""
    return {
        "SPARK_HOME": str(spark_home()),
        "JAVA_HOME": str(java_home()),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": settings.spark.cluster_host,
        "SPARK_LOG_DIR": str(settings.logs),
        "SPARK_NO_DAEMONIZE": "1",
    }


def master_state(settings) -> dict:
    url = f"http://{settings.spark.cluster_host}:{settings.spark.master_webui_port}/json/"
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


class SparkMasterService(Service):
    name = "spark-master"
    port_setting = "PLANTLAKE_SPARK__CLUSTER_PORT / PLANTLAKE_SPARK__MASTER_WEBUI_PORT"

    @property
    def managed(self) -> bool:
        return self.settings.spark.managed

    def endpoint(self) -> str:
        return self.settings.spark.cluster_url

    def ports(self) -> list[tuple[str, int]]:
        s = self.settings.spark
        return [(s.cluster_host, s.cluster_port), (s.cluster_host, s.master_webui_port)]

    def prepare(self, report) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def launch(self) -> Launch:
        s = self.settings.spark
        return self._launch(
            [
                str(spark_home() / "bin" / "spark-class"),
                "org.apache.spark.deploy.master.Master",
                "--host",
                s.cluster_host,
                "--port",
                str(s.cluster_port),
                "--webui-port",
                str(s.master_webui_port),
            ],  # fmt: skip
            env=spark_env(self.settings),
        )

    def probe(self) -> str:
        state = master_state(self.settings)
        if state.get("status") != "ALIVE":
            raise RuntimeError(f"master status {state.get('status')}")
        alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
        return f"ALIVE, {len(alive)} worker(s)"


class SparkWorkerService(Service):
    name = "spark-worker"
    port_setting = "PLANTLAKE_SPARK__WORKER_WEBUI_PORT"

    @property
    def managed(self) -> bool:
        return self.settings.spark.managed

    def endpoint(self) -> str:
        s = self.settings.spark
        return f"http://{s.cluster_host}:{s.worker_webui_port}"

    def ports(self) -> list[tuple[str, int]]:
        return [(self.settings.spark.cluster_host, self.settings.spark.worker_webui_port)]

    def prepare(self, report) -> None:
        (self.data_dir / "work").mkdir(parents=True, exist_ok=True)

    def launch(self) -> Launch:
        s = self.settings.spark
        return self._launch(
            [
                str(spark_home() / "bin" / "spark-class"),
                "org.apache.spark.deploy.worker.Worker",
                s.cluster_url,
                "--host",
                s.cluster_host,
                "--cores",
                str(s.worker_cores),
                "--memory",
                s.worker_memory,
                "--webui-port",
                str(s.worker_webui_port),
                "--work-dir",
                str(self.data_dir / "work"),
            ],  # fmt: skip
            env={
                **spark_env(self.settings),
                "SPARK_WORKER_OPTS": os.environ.get(
                    # Clean up finished applications' work dirs so a long-lived worker doesn't fill disk.
                    "SPARK_WORKER_OPTS",
                    "-Dspark.worker.cleanup.enabled=true",
                ),
            },
        )

    def probe(self) -> str:
        s = self.settings.spark
        state = master_state(self.settings)
        for worker in state.get("workers", []):
            if worker.get("webuiaddress", "").endswith(f":{s.worker_webui_port}"):
                if worker.get("state") == "ALIVE":
                    return f"ALIVE, {worker.get('cores')} cores, {worker.get('memory')} MB"
                raise RuntimeError(f"registered but {worker.get('state')}")
        raise RuntimeError(f"not registered with {s.cluster_url}")
