"""Error reporting to Sentry (operations document §7)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

FILTERED = "[Filtered]"

# Keys whose values never leave the server, wherever they appear in an event
# (request data, headers, local variables of a frame, extra, breadcrumbs).
SENSITIVE_KEY = re.compile(
    r"pass|secret|token|api[-_]?key|authori[sz]ation|cookie|session|csrf|dsn|"
    r"credential|private[-_]?key|signature",
    re.IGNORECASE,
)
# Request headers dropped outright (on top of send_default_pii=False).
DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# A release directory's name: <UTC timestamp of the build>-<commit>.
RELEASE_DIR = re.compile(r"^\d{14}-(?P<commit>[0-9a-f]{7,40})$")


def sentry_release(release: str) -> str:
    """The Sentry release of a deployed release: its commit.

    Release directories are named ``<build timestamp>-<commit>``, and each
    app server builds its own (one at a time), so the timestamps differ from
    server to server; the commit is what they share, and what a deploy
    records with Sentry. Any other value is kept as it is.
    """
    match = RELEASE_DIR.match(release)
    return match["commit"] if match else release


def _scrub(value: Any, depth: int = 0) -> Any:
    """Return ``value`` with the value of every sensitive-looking key filtered."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {
            key: FILTERED
            if isinstance(key, str) and SENSITIVE_KEY.search(key)
            else _scrub(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item, depth + 1) for item in value]
    return value


def _scrub_query_string(query: str) -> str:
    """Filter the sensitive parameters of a query string, keeping the others."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, FILTERED if SENSITIVE_KEY.search(k) else v) for k, v in pairs])


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """``before_send`` hook: remove personal data and secrets from an event.

    Defence in depth on top of ``send_default_pii=False``: the request's
    cookies and authorisation headers are dropped, and the value of any key
    that looks like a password, secret, token, session or cookie is replaced
    by ``[Filtered]`` anywhere in the event (including the local variables
    of stack frames). Always returns the event: nothing is silently lost.
    """
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: value
                for name, value in headers.items()
                if str(name).lower() not in DROPPED_HEADERS
            }
        query = request.get("query_string")
        if isinstance(query, str) and query:
            request["query_string"] = _scrub_query_string(query)
    return _scrub(event)


def init_sentry(
    dsn: str,
    *,
    environment: str = "production",
    release: str = "",
    traces_sample_rate: float = 0.0,
    transport: type | Callable[..., Any] | None = None,
) -> bool:
    """Initialise sentry-sdk with the Django integration when ``dsn`` is set.

    ``release`` is a release directory's name or any other identifier (see
    :func:`sentry_release`). Returns whether Sentry was initialised. Without
    a DSN nothing is imported or started, so the application never talks to
    Sentry by accident.
    ``transport`` replaces sentry-sdk's HTTP transport (``sentry_check`` uses
    one that records whether the event was accepted).
    """
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        release=sentry_release(release) or None,
        integrations=[DjangoIntegration()],
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        before_send=scrub_event,
        **options,
    )
    return True
