"""The one error family of plantlake: every failure a user can act on is one of these."""

from __future__ import annotations

from pathlib import Path


class PlantlakeError(Exception):
    """Base error. `code` is stable (tests assert on it); the message says what to do."""

    code = "plantlake"

    def __init__(self, message: str, *, hint: str | None = None, log: Path | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log = log

    def __str__(self) -> str:
        parts = [self.message]
        if self.hint:
            parts.append(self.hint)
        if self.log:
            parts.append(f"Log: {self.log}")
        # Quoted log lines make the message multi-line; keep the advice visibly apart from them.
        return ("\n" if "\n" in self.message else " ").join(parts)

    def for_user(self) -> str:
        """How every entry point (the CLI, the spark-submit job) shows it: `[code]: message hint`."""
        return f"[{self.code}]: {self}"


class ConfigError(PlantlakeError):
    code = "config"


class InstallError(PlantlakeError):
    code = "install"


class PortInUseError(PlantlakeError):
    code = "port-in-use"


class ServiceError(PlantlakeError):
    code = "service"


class ContractError(PlantlakeError):
    code = "contract"


class SourceError(PlantlakeError):
    code = "source"


class SinkError(PlantlakeError):
    code = "sink"


class ExpectationFailed(PlantlakeError):
    """Rows failed a data-quality rule whose action is `fail`: the silver job stops."""

    code = "expectation-failed"

    def __init__(self, message: str, *, rule: str, failed: int, example: str, hint: str):
        super().__init__(message, hint=hint)
        self.rule = rule
        self.failed = failed
        self.example = example
