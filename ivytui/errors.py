"""Typed errors that carry a title and a message a person can act on."""

from __future__ import annotations


class IvyError(Exception):
    """An error with a short title and one line that says what is wrong and what to do."""

    title = "ivytui"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


class ConfigError(IvyError):
    title = "configuration"


class SandboxError(IvyError):
    title = "sandbox"


class KubeError(IvyError):
    title = "kubernetes"


class StorageError(IvyError):
    title = "object storage"


class PostgresError(IvyError):
    title = "postgresql"
