"""The shape every local service shares: where its files live, how it is launched and probed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from plantlake.core.config import Settings
from plantlake.services import process
from plantlake.services.process import Launch, Report


@dataclass(frozen=True)
class Health:
    name: str
    up: bool
    endpoint: str
    detail: str
    managed: bool
    pid: int | None = None
    log: str | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "status": "up" if self.up else "down",
            "endpoint": self.endpoint,
            "detail": self.detail,
            "managed": self.managed,
            "pid": self.pid,
            "log": self.log,
        }


class Service(ABC):
    """One real service of the stack. Subclasses say how to install, launch and probe it."""

    name: ClassVar[str]
    # The setting a user changes to move this service (named in port-conflict errors).
    port_setting: ClassVar[str]
    start_timeout: ClassVar[float] = 60.0

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    @abstractmethod
    def managed(self) -> bool:
        """Whether `plantlake up` runs this service locally (else it is the user's own)."""

    @abstractmethod
    def endpoint(self) -> str: ...

    @abstractmethod
    def ports(self) -> list[tuple[str, int]]:
        """The host/port pairs the local process binds."""

    @abstractmethod
    def launch(self) -> Launch:
        """The command that runs the service in the foreground."""

    @abstractmethod
    def probe(self) -> str:
        """A protocol-level health check; returns a detail line or raises."""

    def install(self, report: Report) -> None:
        """Make the service's software present (idempotent)."""

    def prepare(self, report: Report) -> None:
        """Write config files and initialise storage before the first launch (idempotent)."""

    def configure(self, report: Report) -> None:
        """Create what plantlake declares inside the running service (topics, buckets)."""

    @property
    def log(self) -> Path:
        return self.settings.logs / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        return self.settings.home / "run" / f"{self.name}.pid"

    @property
    def data_dir(self) -> Path:
        return self.settings.home / "data" / self.name

    def _launch(self, argv: list[str], env: dict[str, str] | None = None) -> Launch:
        return Launch(
            name=self.name,
            argv=argv,
            env=env or {},
            log=self.log,
            pidfile=self.pidfile,
            cwd=self.data_dir,
        )

    def health(self) -> Health:
        pid = process.read_pid(self.pidfile) if self.managed else None
        try:
            detail, up = self.probe(), True
        except Exception as exc:  # a failed probe is the answer "down", with its reason
            detail, up = str(exc) or type(exc).__name__, False
        if self.managed and up and pid is None:
            detail += " (answering, but not started by plantlake)"
        return Health(
            name=self.name,
            up=up,
            endpoint=self.endpoint(),
            detail=detail,
            managed=self.managed,
            pid=pid,
            log=str(self.log) if self.managed else None,
        )
