import os
import socket
import sys
import time

import pytest

from plantlake.core.errors import PortInUseError, ServiceError
from plantlake.services import process


def test_taken_port_is_reported_with_owner_and_what_to_do():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError) as info:
            process.check_ports_free("kafka", [("127.0.0.1", port)], "PLANTLAKE_KAFKA__X")
    message = str(info.value)
    assert f"127.0.0.1:{port} is already in use" in message
    assert f"(pid {os.getpid()})" in message  # the owner (this process), found with ss
    assert "PLANTLAKE_KAFKA__X" in message


def _launch(tmp_path, code: str) -> process.Launch:
    return process.Launch(
        name="sleeper", argv=[sys.executable, "-c", code], env={},
        log=tmp_path / "sleeper.log", pidfile=tmp_path / "sleeper.pid",
    )  # fmt: skip


def test_spawn_records_pid_and_stop_ends_the_process(tmp_path):
    launch = _launch(tmp_path, "import time; print('hello', flush=True); time.sleep(60)")
    pid = process.spawn(launch)
    assert process.read_pid(launch.pidfile) == pid
    deadline = time.monotonic() + 20
    while "hello" not in launch.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.stop(launch.pidfile)
    assert process.read_pid(launch.pidfile) is None
    assert "hello" in launch.log.read_text()


def test_pidfile_of_a_foreign_process_is_ignored(tmp_path):
    pidfile = tmp_path / "x.pid"
    pidfile.write_text('{"pid": 1, "name": "x"}')
    assert process.read_pid(pidfile) is None
    assert process.stop(pidfile) is False


def test_a_service_that_dies_while_starting_reports_its_log(tmp_path):
    launch = _launch(tmp_path, "import sys; print('bad config line 3', flush=True); sys.exit(2)")
    pid = process.spawn(launch)

    def probe() -> str:
        raise ConnectionRefusedError("refused")

    with pytest.raises(ServiceError) as info:
        process.wait_until("sleeper", probe, pid=pid, log=launch.log, timeout=20)
    assert "exited while starting" in str(info.value)
    assert "bad config line 3" in str(info.value)
    assert info.value.log == launch.log


def test_run_logged_failure_names_the_step_and_log(tmp_path):
    from plantlake.core.errors import InstallError

    log = tmp_path / "install.log"
    with pytest.raises(InstallError) as info:
        process.run_logged([sys.executable, "-c", "print('no network'); raise SystemExit(3)"],
                           log=log, what="Building MinIO", hint="retry")  # fmt: skip
    assert "Building MinIO failed (exit 3)" in str(info.value)
    assert "no network" in str(info.value)
