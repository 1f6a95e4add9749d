"""The errors of the DigitalOcean code; ``str()`` of each is meant for operators."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class ProvisioningError(Exception):
    """Base class of every error this package raises."""


class SpecError(ProvisioningError):
    """The requested environment is invalid (bad name, unknown size, image or region)."""


class ProvisioningTimeout(ProvisioningError):
    """Droplets did not become active (or go away) before the deadline."""


class DigitalOceanError(ProvisioningError):
    """An API call failed; carries the HTTP status and DigitalOcean's error id."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.error_id = error_id
        self.method = method
        self.path = path
        self.api_message = message
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else "the API"
        if self.status == 401:
            return (
                "DigitalOcean rejected the API token (HTTP 401 Unauthorized: "
                f"{self.api_message}). Check DIGITALOCEAN_TOKEN or vault_digitalocean_token."
            )
        if self.status == 403:
            return (
                f"DigitalOcean refused {where} (HTTP 403 Forbidden: {self.api_message}). "
                "The token may lack the write scope."
            )
        if self.status == 429:
            return (
                f"DigitalOcean kept rate-limiting {where} (HTTP 429: {self.api_message}) "
                "after every retry; wait for the limit to reset and run again."
            )
        if self.status is None:
            return f"DigitalOcean could not be reached for {where}: {self.api_message}"
        label = f"HTTP {self.status}" + (f" {self.error_id}" if self.error_id else "")
        return f"DigitalOcean refused {where} ({label}): {self.api_message}"


@contextmanager
def gone_counts_as_deleted() -> Iterator[None]:
    """Swallow a 404 from a delete: a resource already gone is what was asked for."""
    try:
        yield
    except DigitalOceanError as exc:
        if exc.status != 404:
            raise
