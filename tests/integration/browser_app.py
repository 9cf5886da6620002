"""Helpers of the browser tests: the workbench served by uvicorn in a thread of the test process,
and Debian's chromium driven by Playwright, watched for any request that leaves 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import uvicorn

from plantlake.core.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
# As the machine's own probe starts it: no sandbox as root, and none of the background
# connections to Google's hosts that this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """The workbench of `settings` on a free loopback port, for the block; yields its base URL."""
    from plantlake.workbench.server import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=LOOPBACK, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="workbench", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the workbench did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class OffHostRequests:
    """Every request a page made to a host other than 127.0.0.1 (a CDN, a font, a tracker)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, request) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname != LOOPBACK:
            self.urls.append(request.url)
