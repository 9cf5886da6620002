"""Supervision of the local services: pid files, port checks, start/stop, and commands run with progress."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plantlake.core.errors import InstallError, PortInUseError, ServiceError

Report = Callable[[str], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Launch:
    """How to run one long-lived service process."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    log: Path
    pidfile: Path
    cwd: Path | None = None


def port_owner(port: int) -> str:
    """Best-effort name of the process listening on a TCP port (for error messages)."""
    if shutil.which("ss") is None:
        return "another process"
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    # users:(("java",pid=1234,fd=99))
    if "users:((" in out:
        inner = out.split("users:((", 1)[1].split(")", 1)[0]
        parts = inner.split(",")
        name = parts[0].strip('"')
        pid = next((p.split("=")[1] for p in parts if p.startswith("pid=")), "?")
        return f"{name} (pid {pid})"
    return "another process"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports_free(service: str, ports: Sequence[tuple[str, int]], setting_hint: str) -> None:
    for host, port in ports:
        if not port_is_free(host, port):
            raise PortInUseError(
                f"Cannot start {service}: {host}:{port} is already in use by {port_owner(port)}.",
                hint=f"Stop that process, or give plantlake's {service} another port "
                f"({setting_hint}), then run `plantlake up` again.",
            )


MARKER = "PLANTLAKE_SERVICE"


def read_pid(pidfile: Path) -> int | None:
    """The pid recorded for a service, if that process is still the one we started.

    Launchers such as spark-class exec into java, so the command line cannot identify the
    process; the marker variable we put in its environment survives the exec.
    """
    try:
        record = json.loads(pidfile.read_text())
        pid = int(record["pid"])
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, ValueError, KeyError):
        return None
    if f"{MARKER}={record['name']}".encode() not in environ or not _alive(pid):
        return None
    return pid


def spawn(launch: Launch) -> int:
    """Start a service in its own session, logging to its log file; returns its pid."""
    launch.log.parent.mkdir(parents=True, exist_ok=True)
    launch.pidfile.parent.mkdir(parents=True, exist_ok=True)
    with launch.log.open("ab") as log:
        log.write(f"\n==== plantlake starting {launch.name} at {time.ctime()}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(launch.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **launch.env, MARKER: launch.name},
            cwd=launch.cwd,
            start_new_session=True,
        )
    launch.pidfile.write_text(json.dumps({"pid": proc.pid, "name": launch.name}))
    # Until the child has exec'd, /proc shows the parent's environment without the marker.
    deadline = time.monotonic() + 5
    while read_pid(launch.pidfile) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc.pid


def wait_until(
    name: str,
    probe: Callable[[], str],
    *,
    pid: int,
    log: Path,
    timeout: float,
) -> str:
    """Poll `probe` until it returns; fail early if the process dies."""
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            return probe()
        except Exception as exc:  # any probe failure means "not ready yet"
            last_error = str(exc) or type(exc).__name__
        if not _alive(pid):
            raise ServiceError(
                f"{name} exited while starting ({last_error}). Last log lines:\n{tail(log)}",
                hint="Fix what the log says, then run `plantlake up` again.",
                log=log,
            )
        time.sleep(0.5)
    raise ServiceError(
        f"{name} did not become healthy within {timeout:.0f}s ({last_error}). "
        f"Last log lines:\n{tail(log)}",
        hint="It is left running for inspection; `plantlake down` stops it.",
        log=log,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is dead for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def stop(pidfile: Path, *, timeout: float = 30.0) -> bool:
    """Stop the process group recorded in `pidfile`; True if something was stopped."""
    pid = read_pid(pidfile)
    pidfile.unlink(missing_ok=True)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        with path.open(errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip()
    except OSError:
        return "(no log)"


def run_logged(
    argv: Sequence[str],
    *,
    log: Path,
    what: str,
    hint: str,
    report: Report = _quiet,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run an install step, streaming its output to `log` and each line to `report`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(f"\n==== {time.ctime()}: {' '.join(argv)}\n")
        handle.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                env={**os.environ, **(env or {})},
                cwd=cwd,
            )
        except FileNotFoundError as exc:
            raise InstallError(f"{what} failed: {argv[0]} is not installed.", hint=hint) from exc
        assert proc.stdout is not None
        for line in proc.stdout:
            line = _ANSI.sub("", line)  # Maven colours its output even in batch mode
            handle.write(line)
            if line.strip():
                report(line.strip())
        code = proc.wait()
    if code != 0:
        raise InstallError(
            f"{what} failed (exit {code}). Last log lines:\n{tail(log)}", hint=hint, log=log
        )
