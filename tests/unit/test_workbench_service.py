"""The workbench as a service of the local stack: its launch command, ports, place in `plantlake
up`, and its HTTP probe (against a stand-in server on loopback; no app, no Spark)."""

import http.server
import os
import socket
import sys
import threading

import pytest

from plantlake.core.config import WorkbenchSettings, load_settings
from plantlake.core.errors import ConfigError
from plantlake.services import stack
from plantlake.services.workbench import WorkbenchService


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("PLANTLAKE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PLANTLAKE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _settings(**workbench):
    return load_settings(workbench=WorkbenchSettings(**workbench))


def test_it_runs_plantlake_app_with_this_interpreter_on_the_configured_address(home):
    svc = WorkbenchService(_settings(host="127.0.0.1", port=8123))
    launch = svc.launch()
    assert launch.argv[0] == sys.executable
    assert list(launch.argv[-5:]) == ["app", "--host", "127.0.0.1", "--port", "8123"]
    assert "plantlake.app.cli" in launch.argv[2]
    # The app finds the same secrets (its users, its session secret) through the same home.
    assert launch.env == {"PLANTLAKE_HOME": str(home)}
    assert launch.pidfile == home / "run" / "workbench.pid"
    assert launch.log == home / "logs" / "workbench.log"
    assert launch.cwd == home / "data" / "workbench"
    assert svc.ports() == [("127.0.0.1", 8123)]
    assert svc.endpoint() == "http://127.0.0.1:8123"
    assert svc.port_setting == "PLANTLAKE_WORKBENCH__PORT"


def test_a_config_file_found_here_is_handed_on_by_absolute_path(home, tmp_path):
    (tmp_path / "plantlake.toml").write_text("[workbench]\nport = 8124\n")
    svc = WorkbenchService(load_settings())
    launch = svc.launch()
    # The app runs in its own folder, where ./plantlake.toml would not be found.
    assert launch.env["PLANTLAKE_CONFIG"] == str((tmp_path / "plantlake.toml").resolve())
    assert launch.argv[-1] == "8124"


def test_a_wildcard_bind_is_probed_on_loopback(home):
    assert WorkbenchService(_settings(host="0.0.0.0", port=9)).endpoint() == "http://127.0.0.1:9"
    assert WorkbenchService(_settings(host="::", port=9)).endpoint() == "http://[::1]:9"


def test_plantlake_up_starts_it_after_minio_and_managed_follows_the_settings(home):
    names = [svc.name for svc in stack.services(_settings())]
    assert "workbench" in names and names.index("workbench") > names.index("minio")
    assert [s.name for s in stack.services(_settings(), ["workbench"])] == ["workbench"]
    assert stack.services(_settings(managed=False), ["workbench"])[0].managed is False
    with pytest.raises(ConfigError, match="workbench"):
        stack.services(_settings(), ["workbnech"])


class _Answer(http.server.BaseHTTPRequestHandler):
    status, kind = 200, "text/html; charset=utf-8"

    def do_GET(self):  # noqa: N802 - the http.server hook's name
        self.send_response(self.status if self.path == "/login" else 404)
        self.send_header("Content-Type", self.kind)
        self.end_headers()
        self.wfile.write(b"<form method=post></form>")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_the_probe_wants_the_login_page(home, server, monkeypatch):
    port = server.server_address[1]
    svc = WorkbenchService(_settings(port=port))
    assert svc.probe() == "login page OK"
    health = svc.health()
    # Answering, but no pid file: someone else's process on the workbench port.
    assert health.up and health.pid is None and "not started by plantlake" in health.detail
    monkeypatch.setattr(_Answer, "kind", "application/json")
    assert not svc.health().up


def test_nothing_listening_is_down_with_the_reason(home):
    with socket.socket() as probe:  # a port nothing listens on once this socket is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    health = WorkbenchService(_settings(port=port)).health()
    assert not health.up and "refused" in health.detail.lower()


def test_the_demo_ends_with_the_url_a_login_and_the_readings_waiting(home, server):
    from rich.console import Console

    from plantlake.app.demo import print_workbench
    from plantlake.app.local_secrets import workbench_logins_file
    from plantlake.core.config import WorkbenchUser

    hashed = "scrypt$16384$8$1$" + "a" * 24
    users = {"planner": WorkbenchUser(password_hash=hashed, role="planner"),
             "viewer": WorkbenchUser(password_hash=hashed, role="viewer")}  # fmt: skip
    settings = _settings(port=server.server_address[1], users=users)
    home.mkdir(parents=True, exist_ok=True)
    workbench_logins_file(home).write_text(
        '{"planner": "pw-[one]", "viewer": "pw-two", "old": "x"}'
    )
    console = Console(record=True, width=400)
    print_workbench(settings, console, waiting=7, history_lake="s3a://plantlake/demo-ml/abc")
    said = console.export_text()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    assert f"workbench: {url}\n" in said  # answering: no "not running" hint
    assert "planner / pw-[one]  (planner: decides)" in said
    assert "viewer / pw-two  (viewer: reads only)" in said
    assert "old" not in said  # a login the settings no longer hold
    assert f"7 quarantined readings wait for review at {url}/quarantine" in said
    # The month of history's work orders live in a lake of their own: how to browse them.
    port = server.server_address[1] + 1
    assert f"`PLANTLAKE_LAKE__ROOT=s3a://plantlake/demo-ml/abc plantlake app --port {port}`" in said


def test_the_demo_says_how_to_get_a_login_when_there_is_none(home):
    from rich.console import Console

    from plantlake.app.demo import print_workbench

    console = Console(record=True, width=300)
    print_workbench(_settings(port=9), console, waiting=None)
    said = console.export_text()
    assert "not running: `plantlake up workbench` starts it" in said
    assert "plantlake app-password" in said and "quarantined" not in said
