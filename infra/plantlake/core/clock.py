"""Time as plantlake stamps and prints it (core: no I/O).

Records carry epoch milliseconds (UTC); people read ISO 8601 in UTC with a `Z`, or, in spans and
log lines, `YYYY-MM-DD HH:MM:SS`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def iso_ms(epoch_ms: int) -> str:
    """ISO 8601 in UTC, to the millisecond when there is one: 2026-01-01T00:00:00Z,
    2026-01-01T00:00:00.250Z."""
    spec = "milliseconds" if epoch_ms % 1000 else "seconds"
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def utc_text(epoch_ms: int) -> str:
    """`YYYY-MM-DD HH:MM:SS` in UTC, for spans a person reads (the caller says "UTC")."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_ms / 1000))


def log_stamp() -> str:
    """`YYYY-MM-DD HH:MM:SS` local time, the stamp of a job's progress lines."""
    return time.strftime("%Y-%m-%d %H:%M:%S")
