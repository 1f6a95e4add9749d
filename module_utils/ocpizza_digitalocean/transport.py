"""python-digitalocean with timeouts, retries and status-aware errors.

python-digitalocean sets no request timeout unless an environment variable asks
for one, retries nothing (a 429 rate limit fails the call), and reports an HTTP
error as a bare message without its status code. :class:`_Transport` is mixed
into the library's own resource classes and replaces their single request
method, so every call, including each page of a paginated listing, has a
timeout, is retried with backoff on 429 (and on transient failures of requests
that are safe to repeat), and fails with a :class:`DigitalOceanError` that
knows its status code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from .errors import DigitalOceanError

try:
    import digitalocean
    import requests
    from digitalocean.baseapi import BaseAPI as _LibraryBaseAPI
    from digitalocean.Firewall import InboundRule, OutboundRule  # noqa: F401 (for the client)
except ImportError:  # reported by the module and the plugin, which need it
    HAS_DIGITALOCEAN = False

    class _LibraryBaseAPI:  # type: ignore[no-redef]
        """Stand-in so this file can be imported without python-digitalocean."""

else:
    HAS_DIGITALOCEAN = True


@dataclass
class TransportSettings:
    """How every API request is sent; shared by all objects of one client."""

    # Seconds before a request without an answer fails.
    timeout: float = 30.0
    # How many times one request is repeated after a 429 or a transient failure.
    max_retries: int = 5
    # First backoff delay in seconds, doubled on every retry...
    backoff_base: float = 1.0
    # ...and never longer than this, whatever Retry-After says.
    backoff_max: float = 60.0
    # Injected so tests need not sleep.
    sleep: Callable[[float], None] = time.sleep
    # Statistics, reported by the module: retries done, and why.
    retries: int = 0
    rate_limited: int = 0

    def delay(self, attempt: int, response: Any = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if response is not None:
            hinted = retry_after(response.headers)
            if hinted is not None:
                return min(max(hinted, 0.0), self.backoff_max)
        return min(self.backoff_base * (2**attempt), self.backoff_max)

    def wait_before_retry(self, attempt: int, response: Any = None) -> None:
        """Sleep before retry number ``attempt`` and count it."""
        if response is not None and response.status_code == 429:
            self.rate_limited += 1
        self.sleep(self.delay(attempt, response))
        self.retries += 1


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Read a server's wait hint: ``Retry-After`` or DigitalOcean's ``RateLimit-Reset``."""
    value = headers.get("Retry-After")
    if value:
        try:
            return float(value)
        except ValueError:
            try:
                return parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                pass
    reset = headers.get("RateLimit-Reset") or headers.get("Ratelimit-Reset")
    if reset:
        try:
            return float(reset) - time.time()
        except ValueError:
            return None
    return None


def api_path(url: str, end_point: str) -> str:
    """Return ``url`` relative to the API end point, for messages."""
    path = url[len(end_point) :] if url.startswith(end_point) else url
    return "/" + path.split("?", 1)[0].lstrip("/")


def error_from_response(response: Any, method: str, path: str) -> DigitalOceanError:
    """Build the error for a failed response, keeping DigitalOcean's id and message."""
    error_id: str | None = None
    message = response.reason or "error"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error_id = body.get("id")
        message = body.get("message") or message
    return DigitalOceanError(str(message), response.status_code, error_id, method, path)


def _retryable(status: int, method: str) -> bool:
    """A 429 is always worth repeating; a 5xx only for a request that is safe to repeat."""
    return status == 429 or (status >= 500 and method != "POST")


class _Transport(_LibraryBaseAPI):
    """Mixin for python-digitalocean resource classes: a safer request method.

    ``BaseAPI.get_data`` (and its pagination loop) sends every request through
    the private ``_BaseAPI__perform_request``; overriding it here gives every
    call of the subclasses below a timeout, retries and typed errors. The
    settings arrive through the library's own constructor, which stores any
    keyword argument as an attribute (``_ocpizza_transport=...``).
    """

    _ocpizza_transport: TransportSettings

    def get_timeout(self) -> float:
        """Always send a timeout (the library sends none unless an env var is set)."""
        return self._ocpizza_transport.timeout

    def _BaseAPI__perform_request(
        self, url: str, type: str = "GET", params: dict[str, Any] | None = None
    ) -> Any:
        """Send one request like the library does, with retries; raise on failure."""
        settings = self._ocpizza_transport
        path = api_path(url, self.end_point)
        attempt = 0
        while True:
            try:
                response = _LibraryBaseAPI._BaseAPI__perform_request(  # type: ignore[attr-defined]
                    self, url, type, params
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                # A POST may have been carried out even though no answer came:
                # never repeat it blindly (the caller re-reads and decides).
                if type == "POST" or attempt >= settings.max_retries:
                    raise DigitalOceanError(
                        f"{exc.__class__.__name__}: {exc}", method=type, path=path
                    ) from exc
                settings.wait_before_retry(attempt)
                attempt += 1
                continue
            if _retryable(response.status_code, type) and attempt < settings.max_retries:
                settings.wait_before_retry(attempt, response)
                attempt += 1
                continue
            if not response.ok:
                raise error_from_response(response, type, path)
            return response


if HAS_DIGITALOCEAN:

    class Manager(_Transport, digitalocean.Manager):
        """python-digitalocean's Manager with timeouts, retries and typed errors."""

    class Droplet(_Transport, digitalocean.Droplet):
        """python-digitalocean's Droplet with timeouts, retries and typed errors."""

    class Action(_Transport, digitalocean.Action):
        """python-digitalocean's Action with timeouts, retries and typed errors."""

    class VPC(_Transport, digitalocean.VPC):
        """python-digitalocean's VPC with timeouts, retries and typed errors."""

    class SSHKey(_Transport, digitalocean.SSHKey):
        """python-digitalocean's SSHKey with timeouts, retries and typed errors."""

    class Tag(_Transport, digitalocean.Tag):
        """python-digitalocean's Tag with timeouts, retries and typed errors."""

    class Firewall(_Transport, digitalocean.Firewall):
        """python-digitalocean's Firewall with timeouts, retries and typed errors."""
