"""``manage.py sentry_check``: send one real error event to Sentry and say whether it arrived."""

from __future__ import annotations

import socket
import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from ocpizza.observability import init_sentry

MESSAGE = "OC Pizza sentry_check: test error"


class SentryCheckError(RuntimeError):
    """The exception raised and captured on purpose (its type names it in Sentry)."""


def _recording_transport() -> tuple[type, dict[str, list[Any]]]:
    """An HTTP transport that records what the Sentry endpoint answered.

    sentry-sdk never tells its caller whether an event was delivered; this
    subclass keeps every HTTP status and every sending failure so the
    command can tell.
    """
    from sentry_sdk.transport import HttpTransport

    seen: dict[str, list[Any]] = {"status": [], "errors": []}

    class RecordingTransport(HttpTransport):
        def _handle_response(self, response: Any, envelope: Any) -> None:
            seen["status"].append(int(response.status))
            super()._handle_response(response=response, envelope=envelope)

        def _send_request(self, *args: Any, **kwargs: Any) -> None:
            try:
                super()._send_request(*args, **kwargs)
            except Exception as exc:
                seen["errors"].append(f"{type(exc).__name__}: {exc}")
                raise

    return RecordingTransport, seen


class Command(BaseCommand):
    help = (
        "Send one error event to the configured Sentry (SENTRY_DSN) with the release and "
        "environment, wait for it to be delivered (--timeout seconds), print its event id. "
        "Exits non-zero when Sentry is not configured or the event was not accepted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            help="Seconds to wait for the Sentry endpoint to accept the event (default 10).",
        )
        parser.add_argument(
            "--dsn",
            default="",
            help=(
                "Send to this DSN instead of SENTRY_DSN (to test another endpoint; the "
                "release and environment stay the configured ones)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        timeout: float = options["timeout"]
        if timeout <= 0:
            raise CommandError("--timeout must be a positive number of seconds")
        dsn = options["dsn"] or getattr(settings, "SENTRY_DSN", "")
        if not dsn:
            raise CommandError("Sentry is not configured: SENTRY_DSN is empty")

        import sentry_sdk

        transport, seen = _recording_transport()
        # A client of its own, configured like the app's (scrubbing included),
        # whose transport records the answer.
        init_sentry(
            dsn,
            environment=getattr(settings, "SENTRY_ENVIRONMENT", "production"),
            release=getattr(settings, "SENTRY_RELEASE", ""),
            transport=transport,
        )
        marker = uuid.uuid4().hex
        try:
            raise SentryCheckError(f"{MESSAGE} {marker} from {socket.gethostname()}")
        except SentryCheckError:
            event_id = sentry_sdk.capture_exception()
        sentry_sdk.flush(timeout=timeout)

        if event_id is None:
            raise CommandError("sentry-sdk dropped the event before sending it")
        if seen["errors"]:
            raise CommandError(f"event {event_id} not delivered: {seen['errors'][0]}")
        if not seen["status"]:
            raise CommandError(f"event {event_id} not delivered within {timeout:g} s")
        if not all(200 <= status < 300 for status in seen["status"]):
            raise CommandError(
                f"event {event_id} refused by the Sentry endpoint (HTTP {seen['status'][0]})"
            )
        self.stdout.write(f"event {event_id} accepted (marker {marker})")
