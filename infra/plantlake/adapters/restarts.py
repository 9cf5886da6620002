"""When a failed streaming query is worth restarting, and how it is reported (pipelines layer).

Continuous jobs ride out a Kafka, MinIO or Mosquitto restart by restarting the query that
failed: its checkpoint and Delta's idempotent writes make a restart safe. A failed `fail` rule
is not retried: it stops the job by design, until a person looks.
"""

from __future__ import annotations

import re

from plantlake.core.errors import ExpectationFailed

_ERROR_LINE = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Failed)): (.+)$")


def failed_for_good(exc: BaseException) -> bool:
    """Failures a restart cannot cure: a `fail` rule that failed (as itself, or quoted in the
    failure Spark wraps it in)."""
    return isinstance(exc, ExpectationFailed) or "ExpectationFailed" in str(exc)


def failure_reason(exc: BaseException) -> str:
    """The innermost error line of a query failure (Spark wraps the batch's own error, a Python
    traceback or a JVM cause, in a STREAM_FAILED message)."""
    text = str(exc).strip()
    found = [m for line in text.splitlines() if (m := _ERROR_LINE.match(line))]
    if found:
        name, message = found[-1].groups()
        return f"{name.rsplit('.', 1)[-1]}: {message}"[:300]
    return text.splitlines()[0][:300] if text else type(exc).__name__


def backoff_s(failures: int) -> int:
    """2, 4, 8 ... seconds before restart number `failures`, at most a minute."""
    return min(2**failures, 60)
