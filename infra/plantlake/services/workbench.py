"""The planners' workbench (`plantlake app`) as a service of the local stack (services layer).

This layer may not import the web app, so the service runs it by command, with this very
interpreter, and probes it over HTTP: the login page answers 200 once the app serves pages.
"""

from __future__ import annotations

import sys
import urllib.request

from plantlake.core.config import find_config_file
from plantlake.services.base import Service
from plantlake.services.process import Launch

# What a wildcard bind is reached at from this machine.
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class WorkbenchService(Service):
    name = "workbench"
    port_setting = "PLANTLAKE_WORKBENCH__PORT"
    # Importing the app (pandas, matplotlib, delta-rs) takes half a minute on a busy 2-core box.
    start_timeout = 120.0

    @property
    def managed(self) -> bool:
        return self.settings.workbench.managed

    def endpoint(self) -> str:
        w = self.settings.workbench
        host = _ANY.get(w.host, w.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{w.port}"

    def ports(self) -> list[tuple[str, int]]:
        return [(self.settings.workbench.host, self.settings.workbench.port)]

    def prepare(self, report) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)  # the process's working directory

    def launch(self) -> Launch:
        w = self.settings.workbench
        # The app loads its own settings: point it at the same home (secrets.env: users, session
        # secret) and the same config file, which it would not find from its working directory.
        env = {"PLANTLAKE_HOME": str(self.settings.home)}
        config = find_config_file()
        if config is not None:
            env["PLANTLAKE_CONFIG"] = str(config.resolve())
        return self._launch(
            [
                sys.executable,
                "-c",
                "from plantlake.app.cli import main; main()",
                "app",
                "--host",
                w.host,
                "--port",
                str(w.port),
            ],  # fmt: skip
            env=env,
        )

    def probe(self) -> str:
        url = f"{self.endpoint()}/login"
        with urllib.request.urlopen(url, timeout=2) as response:
            kind = response.headers.get("Content-Type", "")
            if response.status != 200 or not kind.startswith("text/html"):
                raise RuntimeError(f"GET {url} answered {response.status} {kind}")
        return "login page OK"
