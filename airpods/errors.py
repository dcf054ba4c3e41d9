"""Domain errors. Each carries the exit code the CLI maps it to; anything else is a bug."""

from __future__ import annotations


class AirpodsError(Exception):
    """A failure the user can act on: printed as one message, never as a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []


class UsageError(AirpodsError):
    """Wrong use of a command: unknown service, bad option value, busy port, missing model."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration cannot be used. `problems` lists every problem, one line each."""

    def __init__(self, message: str, problems: list[str] | None = None, *, hint: str | None = None):
        super().__init__(message, hint=hint, details=problems)
        self.problems = problems or []


class RuntimeUnavailable(AirpodsError):
    """Podman is missing or its API cannot be reached."""


class RuntimeFailure(AirpodsError):
    """Podman refused an operation (pull failed, create failed, ...)."""


class StartFailure(AirpodsError):
    """A service did not become healthy: it exited, or the health wait timed out."""

    causes: list[AirpodsError] = []  # the per-service failures when several services failed


class ServiceExited(StartFailure):
    """The container exited (or was restarted by its restart policy) while starting."""

    def __init__(self, message: str, *, hint: str | None = None, details: list[str] | None = None,
                 service: str = "", out_of_memory: bool = False):
        super().__init__(message, hint=hint, details=details)
        self.service = service
        self.out_of_memory = out_of_memory
