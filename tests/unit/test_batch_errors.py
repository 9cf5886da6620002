"""A micro-batch's PlantlakeError reaches the caller of the job as itself (issue 9)."""

from types import SimpleNamespace

import pytest

from plantlake.adapters.batch_errors import await_query, keep_errors, own_error
from plantlake.app import jobs
from plantlake.core.errors import ExpectationFailed, SinkError


def _failed_rule() -> ExpectationFailed:
    return ExpectationFailed(
        "silver.telemetry: expectation 'hard_limit' (action fail) failed for 3 row(s) in batch 0",
        rule="hard_limit", failed=3, example="pump-02", hint="Change the rule's action.",
    )  # fmt: skip


class StoppedQuery:
    """A query that stopped with Spark's wrapping of whatever its batch raised."""

    def __init__(self, name: str, failure: Exception):
        self.name, self.failure = name, failure

    def awaitTermination(self) -> None:  # noqa: N802 - Spark's name
        raise self.failure


def _run_batch(name: str, error: Exception) -> Exception:
    """Run a wrapped batch function that raises `error`; return Spark's wrapping of it."""
    batch = keep_errors(name, lambda _batch, _id: (_ for _ in ()).throw(error))
    with pytest.raises(type(error)):
        batch(None, 0)
    return RuntimeError(f"[STREAM_FAILED] Query [id = 1] terminated with exception: "
                        f"Traceback ... {type(error).__name__}: {error}")  # fmt: skip


def test_await_query_raises_the_batchs_own_error_with_its_code():
    error = _failed_rule()
    failure = _run_batch("silver-a", error)
    with pytest.raises(ExpectationFailed) as raised:
        await_query(StoppedQuery("silver-a", failure))
    assert raised.value is error and raised.value.code == "expectation-failed"
    assert raised.value.__cause__ is failure  # Spark's trace stays reachable (--verbose)


def test_an_error_kept_from_an_earlier_query_is_not_taken_for_another_failure():
    _run_batch("silver-b", _failed_rule())
    other = RuntimeError("[STREAM_FAILED] java.lang.ArithmeticException: long overflow")
    with pytest.raises(RuntimeError):
        await_query(StoppedQuery("silver-b", other))
    assert own_error(SimpleNamespace(name="silver-b"), other) is None


def test_a_failure_that_is_not_plantlakes_comes_back_unchanged():
    failure = RuntimeError("[STREAM_FAILED] S3 connection refused")
    with pytest.raises(RuntimeError) as raised:
        await_query(StoppedQuery("bronze-c", failure))
    assert raised.value is failure


def test_the_spark_submit_entry_prints_the_code_and_hint_and_exits_1(monkeypatch, capsys):
    def failing_layer(*_args, **_kwargs):
        raise _failed_rule()

    monkeypatch.setattr(jobs, "run_layer", failing_layer)
    with pytest.raises(SystemExit) as exited:
        jobs.main(["silver", "--once"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "error [expectation-failed]: silver.telemetry: expectation 'hard_limit'" in err
    assert "Change the rule's action." in err and "Traceback" not in err


def test_other_errors_are_not_kept():
    batch = keep_errors("bronze-d", lambda _batch, _id: (_ for _ in ()).throw(ValueError("x")))
    with pytest.raises(ValueError):
        batch(None, 0)
    assert own_error(SimpleNamespace(name="bronze-d"), RuntimeError("ValueError: x")) is None
    assert SinkError("y").for_user() == "[sink]: y"


def test_pipeline_up_raises_a_failed_rule_as_itself():
    """`pipeline up` watches its queries instead of awaiting them: a query stopped by a failed
    `fail` rule reaches the user as [expectation-failed], not as a generic stop."""
    from plantlake.app.lake_path import query_failure

    error = _failed_rule()
    failure = _run_batch("cold-d", error)
    raised = query_failure(SimpleNamespace(name="cold-d"), failure)
    assert raised is error and raised.code == "expectation-failed"
    assert raised.__cause__ is failure


def test_pipeline_up_reports_any_other_stop_with_spark_s_reason():
    from plantlake.app.lake_path import query_failure

    failure = RuntimeError("[STREAM_FAILED] S3 connection refused")
    raised = query_failure(SimpleNamespace(name="bronze-e"), failure)
    assert raised.code == "plantlake" and "bronze-e query stopped" in raised.message
    assert "S3 connection refused" in raised.message and raised.__cause__ is failure
    stopped = query_failure(SimpleNamespace(name="bronze-f"), None)
    assert "stopped without an error" in stopped.message
