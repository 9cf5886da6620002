"""The forwarder in a process of its own, beside the edge process that fills the buffer (ingest
layer, I/O adapter).

Decoding, filtering and buffering take one core; producing to Kafka another. In one Python
process they share one interpreter lock, so the edge runs the forwarder as a child process on
the same buffer file (SQLite serialises their writes). The child dies with its parent (Linux
parent-death signal), reports its counters through a small JSON file, and is restarted if it
exits on its own. Run by hand: `python -m plantlake.ingest.forwarder_process --help`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from plantlake.core.config import KafkaSettings
from plantlake.core.logging_setup import configure_logging, level_from_env
from plantlake.ingest.forwarder import Forwarder, ForwarderStats

log = logging.getLogger("plantlake.forwarder")
_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """In the child: SIGTERM when the parent goes, however it goes (kill -9). Set here rather
    than in a preexec_fn, which is unsafe in a threaded parent; if the parent is already gone,
    exit at once."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(0)


class ForwarderProcess:
    """Starts, watches and stops the forwarder child of one edge process."""

    def __init__(self, buffer: Path, kafka: KafkaSettings, *, node: str, status: Path):
        self.buffer, self.kafka, self.node, self.status = buffer, kafka, node, status
        self._proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self.restarts = 0

    def start(self) -> None:
        proc = self._spawn()
        threading.Thread(
            target=self._watch, args=(proc,), name="forwarder-watch", daemon=True
        ).start()

    def _spawn(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "plantlake.ingest.forwarder_process",
                   "--buffer", str(self.buffer), "--node", self.node,
                   "--kafka", self.kafka.model_dump_json(), "--status", str(self.status),
                   "--parent", str(os.getpid())]  # fmt: skip
        self._proc = subprocess.Popen(command)
        return self._proc

    def _watch(self, proc: subprocess.Popen) -> None:
        while not self._stopping.is_set():
            code = proc.wait()
            if self._stopping.is_set():
                return
            self.restarts += 1
            log.error("forwarder process exited with %s; restarting it", code)
            time.sleep(1.0)
            proc = self._spawn()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def stats(self) -> ForwarderStats:
        with contextlib.suppress(OSError, ValueError, TypeError):
            return ForwarderStats(**json.loads(self.status.read_text()))
        return ForwarderStats()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _publish(forwarder: Forwarder, status: Path, stop: threading.Event) -> None:
    """The counters to `status` now, every second, and once more at the stop."""

    def write() -> None:
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(forwarder.stats)))
        tmp.replace(status)  # readers never see half a file

    write()
    while not stop.wait(1.0):
        write()
    write()


def main(argv: list[str] | None = None) -> None:
    from plantlake.ingest.buffer import Outbox

    parser = argparse.ArgumentParser(description="Forward one edge buffer to Kafka until SIGTERM.")
    parser.add_argument("--buffer", type=Path, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--kafka", required=True, help="KafkaSettings as JSON")
    parser.add_argument("--status", type=Path, required=True, help="JSON counters, every second")
    parser.add_argument("--parent", type=int, help="exit when this process does")
    args = parser.parse_args(argv)
    if args.parent:
        _die_with(args.parent)
    # The edge process that started it passed its --log-level on through the environment.
    configure_logging(level_from_env())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    forwarder = Forwarder(Outbox(args.buffer), KafkaSettings.model_validate_json(args.kafka),
                          node=args.node)  # fmt: skip
    publisher = threading.Thread(target=_publish, args=(forwarder, args.status, stop), daemon=True)
    publisher.start()
    forwarder.run(stop)
    stop.set()
    publisher.join(5)
    os._exit(0)  # the producer's threads need not be joined: what is unsettled stays buffered


if __name__ == "__main__":
    main()
