"""Logging is configured once, with UTC timestamps and a level that `--log-level` (or
PLANTLAKE_LOG_LEVEL) sets and the processes plantlake starts inherit."""

import logging
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from plantlake.core.logging_setup import (
    FORMAT,
    LEVEL_ENV,
    UtcFormatter,
    configure_logging,
    level_from_env,
    level_number,
)

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) [\w.]+: .+$")


@pytest.fixture(autouse=True)
def clean_root(monkeypatch):
    """Each test starts from an unconfigured root logger and leaves none behind."""
    monkeypatch.delenv(LEVEL_ENV, raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = [h for h in handlers if not isinstance(h.formatter, UtcFormatter)]
    yield
    root.handlers, root.level = handlers, level
    logging.getLogger("py4j").setLevel(logging.NOTSET)


def test_a_line_has_an_iso_utc_timestamp_to_the_millisecond_the_level_and_the_logger():
    moment = datetime(2026, 11, 27, 15, 4, 5, 123000, tzinfo=UTC)
    record = logging.makeLogRecord({"name": "plantlake.forwarder", "levelname": "WARNING",
                                    "msg": "broker down", "created": moment.timestamp(),
                                    "msecs": 123.0})  # fmt: skip
    line = UtcFormatter(FORMAT).format(record)
    assert line == "2026-11-27T15:04:05.123Z WARNING plantlake.forwarder: broker down"


def test_records_below_the_level_are_dropped_and_the_rest_reach_stderr(capsys):
    configure_logging("warning")
    log = logging.getLogger("plantlake.test")
    log.info("not shown")
    log.warning("shown")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and LINE.match(lines[0]) and lines[0].endswith("plantlake.test: shown")


def test_configuring_twice_changes_the_level_and_adds_no_second_handler(capsys):
    configure_logging("error")
    configure_logging("DEBUG")
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, UtcFormatter)]
    assert len(ours) == 1
    logging.getLogger("plantlake.test").debug("once")
    assert capsys.readouterr().err.count("plantlake.test: once") == 1


def test_the_level_is_passed_on_to_child_processes_through_the_environment():
    configure_logging("info")
    code = ("import logging; from plantlake.core.logging_setup import configure_logging, "
            "level_from_env; configure_logging(level_from_env()); "
            "logging.getLogger('plantlake.child').info('from the child')")  # fmt: skip
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, timeout=60)  # fmt: skip
    assert LINE.match(child.stderr.strip()), child.stderr
    assert "INFO plantlake.child: from the child" in child.stderr


def test_chatty_libraries_stay_at_warning_when_plantlake_debugs():
    configure_logging("debug")
    assert logging.getLogger("py4j").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("plantlake.x").getEffectiveLevel() == logging.DEBUG


def test_unknown_levels_are_refused_or_fall_back(monkeypatch):
    with pytest.raises(ValueError, match="debug, info, warning, error"):
        level_number("verbose")
    monkeypatch.setenv(LEVEL_ENV, "loud")
    assert level_from_env() == "warning"  # a child never dies of its parent's typo
    monkeypatch.setenv(LEVEL_ENV, "ERROR")
    assert level_from_env() == "error"


def test_the_cli_option_and_its_variable_set_the_level(monkeypatch, tmp_path):
    from plantlake.app.cli import app

    monkeypatch.setenv("PLANTLAKE_HOME", str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(app, ["--log-level", "info", "export", "no.such_table"])
    assert result.exit_code != 0
    assert logging.getLogger().level == logging.INFO
    monkeypatch.setenv(LEVEL_ENV, "error")
    runner.invoke(app, ["export", "no.such_table"])
    assert logging.getLogger().level == logging.ERROR
    refused = runner.invoke(app, ["--log-level", "chatty", "export", "x"])
    assert refused.exit_code == 2 and "chatty" in refused.output


def test_status_lines_are_stamped_as_log_lines_are():
    from plantlake.core.logging_setup import utc_stamp

    assert utc_stamp(1_796_398_445.123) == "2026-12-04T15:34:05.123Z"
    assert utc_stamp().endswith("Z") and len(utc_stamp()) == len("2026-11-27T15:04:05.123Z")
