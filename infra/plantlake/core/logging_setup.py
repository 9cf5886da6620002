"""Logging as every plantlake process sets it up once: a level, UTC timestamps, stderr (core).

A line reads `2026-11-27T15:04:05.123Z WARNING plantlake.forwarder: message`. The CLI calls
`configure_logging` from its `--log-level` (or PLANTLAKE_LOG_LEVEL), and passes the level on to
the processes it starts through that variable.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Literal, get_args

Level = Literal["debug", "info", "warning", "error"]
LEVELS: tuple[str, ...] = get_args(Level)
LEVEL_ENV = "PLANTLAKE_LOG_LEVEL"
DEFAULT_LEVEL: Level = "warning"
# Libraries that log every call or connection at DEBUG/INFO (py4j logs each JVM command); they
# stay at WARNING whatever plantlake's own level is, or they drown it.
CHATTY = ("py4j", "urllib3", "botocore", "asyncio", "matplotlib", "PIL")


def utc_stamp(epoch_s: float | None = None) -> str:
    """`epoch_s` (default: now) as the log lines stamp it: 2026-11-27T15:04:05.123Z. Status lines
    that long-running processes print (not log) start with it too."""
    epoch_s = time.time() if epoch_s is None else epoch_s
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))
    return f"{stamp}.{int(epoch_s * 1000) % 1000:03d}Z"


class UtcFormatter(logging.Formatter):
    """ISO 8601 UTC timestamps to the millisecond, with a `Z`."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (as logging's last resort does), so
    a redirected or captured stderr gets the lines."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


def level_number(level: str) -> int:
    """The logging level of a name in LEVELS (any case); ValueError for another."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    return logging.getLevelNamesMapping()[level.upper()]


def configure_logging(level: str = DEFAULT_LEVEL) -> None:
    """Send log records at `level` and above to stderr with UTC timestamps.

    Idempotent: a second call changes the level and adds no second handler. The level is also
    put in PLANTLAKE_LOG_LEVEL, so processes started from here log at the same level.
    """
    number = level_number(level)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h.formatter, UtcFormatter)), None)
    if handler is None:
        handler = _Stderr()
        handler.setFormatter(UtcFormatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(number)
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(number, logging.WARNING))
    os.environ[LEVEL_ENV] = level.lower()


def level_from_env(default: str = DEFAULT_LEVEL) -> str:
    """The level a parent process passed on (PLANTLAKE_LOG_LEVEL), or `default`; an unknown
    value falls back to `default` rather than stopping the process."""
    level = os.environ.get(LEVEL_ENV, default).lower()
    return level if level in LEVELS else default
