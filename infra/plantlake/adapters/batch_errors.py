"""A micro-batch's own error, returned to whoever awaits its query as itself (pipelines layer).

Spark calls a foreachBatch function from the JVM; an exception raised there reaches the caller
of `awaitTermination` as a StreamingQueryException whose text holds a Python traceback inside a
JVM one. plantlake's errors (a failed `fail` rule, a broken contract) carry the code and the
hint a user acts on, so each batch function is wrapped to keep the PlantlakeError it raised,
under its query's name, and `await_query` raises that error, chained to Spark's, once the query
has stopped.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from plantlake.core.errors import PlantlakeError

_kept: dict[str, PlantlakeError] = {}
_lock = threading.Lock()


def keep_errors(query_name: str, write_batch: Callable) -> Callable:
    """`write_batch`, keeping the PlantlakeError it raises (and still raising it)."""

    @functools.wraps(write_batch)
    def run(batch, batch_id: int):
        try:
            return write_batch(batch, batch_id)
        except PlantlakeError as exc:
            with _lock:
                _kept[query_name] = exc
            raise

    return run


def own_error(query, failure: BaseException) -> PlantlakeError | None:
    """The PlantlakeError behind `failure`, the exception `query` stopped with, if it was one.

    A kept error counts only if Spark's failure quotes it: an error kept from an earlier query
    of the same name in this process is never taken for a later, different failure.
    """
    with _lock:
        kept = _kept.get(query.name)
        if kept is None or kept.message.splitlines()[0] not in str(failure):
            return None
        return _kept.pop(query.name)


def await_query(query) -> None:
    """`query.awaitTermination()`, raising a micro-batch's PlantlakeError as itself."""
    try:
        query.awaitTermination()
    except Exception as failure:  # a StreamingQueryException, with the JVM's cause inside
        own = own_error(query, failure)
        if own is not None:
            raise own from failure
        raise
