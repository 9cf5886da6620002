"""Runs one edge process: a protocol source feeding filter -> durable buffer -> Kafka (ingest layer)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from plantlake.core.config import Settings
from plantlake.core.logging_setup import utc_stamp
from plantlake.ingest.buffer import Outbox
from plantlake.ingest.buffered_sink import BufferedSink, sheddable_topics
from plantlake.ingest.edge_filter import EdgeFilter
from plantlake.ingest.filters import load_filter_config
from plantlake.ingest.forwarder import Forwarder
from plantlake.ingest.forwarder_process import ForwarderProcess

Source = Callable[[BufferedSink, threading.Event], None]


def buffer_path(settings: Settings, name: str) -> Path:
    return settings.edge_buffer / f"{name}.sqlite"


def run_edge(settings: Settings, name: str, source: Source, console: Console, *,
             stop: threading.Event | None = None, report_every_s: float = 10.0) -> None:  # fmt: skip
    """Run `source` until SIGINT/SIGTERM (or `stop`), forwarding what it emits to Kafka.

    The buffer outlives the process: records appended but not yet in Kafka are sent by the
    next run of the same edge process.
    """
    stop = stop or threading.Event()
    prefix = settings.kafka.topic_prefix
    outbox = Outbox(buffer_path(settings, name), max_bytes=int(settings.edge.buffer_max_mb * 1e6),
                    sheddable=sheddable_topics(prefix))  # fmt: skip
    edge_filter = EdgeFilter(load_filter_config(settings.edge.filters))
    sink = BufferedSink(outbox, topic_prefix=prefix, edge_filter=edge_filter, node=name)
    forwarder = _start_forwarder(settings, name, outbox)
    if threading.current_thread() is threading.main_thread():
        # Explicit handlers: a background job may have inherited SIGINT as ignored.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    reporter = threading.Thread(target=_report, args=(name, outbox, forwarder, edge_filter, console,
                                                       stop, report_every_s), daemon=True)  # fmt: skip
    reporter.start()
    pending, _ = outbox.pending()
    console.print(f"{utc_stamp()} {name}: edge process started (buffer {outbox.path}, {pending} waiting from before, "
                  f"filters {edge_filter.config.version})")  # fmt: skip
    try:
        source(sink, stop)
    finally:
        stop.set()
        # Give the forwarder a moment to drain; whatever remains waits in the buffer.
        deadline = time.monotonic() + 10
        while outbox.pending()[0] and time.monotonic() < deadline and forwarder.alive:
            time.sleep(0.1)
        forwarder.stop()
        left, _ = outbox.pending()
        s = forwarder.stats
        extra = "".join((
            f", {s.dead_letters} refused by Kafka and kept as dead letters" if s.dead_letters else "",
            f", {s.resent} to go again that Kafka may already have" if s.resent else "",
        ))  # fmt: skip
        console.print(f"{utc_stamp()} {name}: stopped; {s.sent} records sent to Kafka{extra}, "
                      f"{left} kept in the buffer")  # fmt: skip
        outbox.close()


class _ForwarderThread:
    """The forwarder as a thread of the edge process (edge.forwarder = "thread")."""

    def __init__(self, forwarder: Forwarder):
        self._forwarder, self._stop = forwarder, threading.Event()
        self._thread = threading.Thread(target=forwarder.run, args=(self._stop,),
                                        name="forwarder", daemon=True)  # fmt: skip
        self._thread.start()

    @property
    def stats(self):
        return self._forwarder.stats

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _start_forwarder(settings: Settings, name: str, outbox: Outbox):
    """The edge process's forwarder, in a child process or a thread (edge.forwarder)."""
    if settings.edge.forwarder == "thread":
        return _ForwarderThread(Forwarder(outbox, settings.kafka, node=name))
    status = settings.home / "run" / f"forwarder-{name}.json"
    status.parent.mkdir(parents=True, exist_ok=True)
    status.unlink(missing_ok=True)
    process = ForwarderProcess(outbox.path, settings.kafka, node=name, status=status)
    process.start()
    return process


def _report(name, outbox, forwarder, edge_filter, console, stop, every) -> None:
    while not stop.wait(every):
        pending, oldest = outbox.pending()
        lag = f", oldest {time.time() - oldest / 1000:.0f}s" if oldest else ""
        egress = ", ".join(f"{k} {v['reduction']:.0%}" for k, v in edge_filter.report().items())
        error = (
            f", Kafka: {forwarder.stats.last_error}"
            if pending and forwarder.stats.last_error
            else ""
        )
        console.print(f"{utc_stamp()} {name}: sent {forwarder.stats.sent}, buffered {pending}{lag}; "
                      f"reduction {egress or 'n/a'}{error}")  # fmt: skip
