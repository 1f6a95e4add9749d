"""A Sentry-protocol stand-in for the tests: receives what sentry-sdk sends.

    with SentryStub(host="10.89.52.1") as stub:
        run_the_app(SENTRY_DSN=stub.dsn)
        event = stub.wait_for_event(lambda e: "marker" in json.dumps(e), timeout=30)

A threaded HTTP server (stdlib only) that accepts ``POST /api/<project>/envelope/``
and ``POST /api/<project>/store/``, plain, gzip or deflate encoded (brotli when
the module is importable), checks the ``X-Sentry-Auth`` header's (or the query
string's) ``sentry_key`` against the DSN's public key (401 otherwise, 404 for
another project), parses the envelope (envelope header line, each item's
header and payload, honouring ``length``) and records the events. Its
lifetime is bounded: the context manager stops it, and it stops on its own
after ``lifetime`` seconds.
"""

from __future__ import annotations

import gzip
import json
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PATH = re.compile(r"^/api/(?P<project>\d+)/(?P<endpoint>envelope|store)/?$")
# The web API a deploy uses (https://docs.sentry.io/api/releases/).
RELEASES = re.compile(r"^/api/0/organizations/(?P<org>[\w.-]+)/releases/$")
DEPLOYS = re.compile(
    r"^/api/0/organizations/(?P<org>[\w.-]+)/releases/(?P<version>[^/]+)/deploys/$"
)
MAX_BODY = 10 * 1024 * 1024


class EnvelopeError(ValueError):
    """The body is not a Sentry envelope."""


@dataclass
class Envelope:
    """One parsed envelope: its header and its items (header, payload)."""

    header: dict[str, Any]
    items: list[tuple[dict[str, Any], Any]] = field(default_factory=list)


def parse_envelope(body: bytes) -> Envelope:
    """Parse a Sentry envelope (https://develop.sentry.dev/sdk/data-model/envelopes/)."""
    newline = body.find(b"\n")
    head, rest = (body, b"") if newline < 0 else (body[:newline], body[newline + 1 :])
    try:
        envelope = Envelope(json.loads(head))
    except ValueError as exc:
        raise EnvelopeError(f"envelope header is not JSON: {exc}") from exc
    while rest.strip():
        newline = rest.find(b"\n")
        line, rest = (rest, b"") if newline < 0 else (rest[:newline], rest[newline + 1 :])
        if not line.strip():
            continue
        try:
            item_header = json.loads(line)
        except ValueError as exc:
            raise EnvelopeError(f"item header is not JSON: {exc}") from exc
        length = item_header.get("length")
        if length is not None:
            if len(rest) < length:
                raise EnvelopeError("item shorter than its length")
            payload, rest = rest[:length], rest[length:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            newline = rest.find(b"\n")
            payload, rest = (rest, b"") if newline < 0 else (rest[:newline], rest[newline + 1 :])
        if item_header.get("type") in {"event", "transaction", "session", "client_report"}:
            try:
                envelope.items.append((item_header, json.loads(payload)))
            except ValueError as exc:
                raise EnvelopeError(f"{item_header.get('type')} payload is not JSON") from exc
        else:
            envelope.items.append((item_header, payload))
    return envelope


def _decode(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in {"", "identity"}:
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # only when sentry-sdk found it too

        return brotli.decompress(body)
    raise EnvelopeError(f"unsupported Content-Encoding {encoding}")


def _sentry_key(handler: BaseHTTPRequestHandler) -> str | None:
    auth = handler.headers.get("X-Sentry-Auth", "")
    match = re.search(r"sentry_key=([^,\s]+)", auth)
    if match:
        return match.group(1)
    query = parse_qs(urlsplit(handler.path).query)
    return query.get("sentry_key", [None])[0]


class SentryStub:
    """A bounded-lifetime Sentry endpoint that records the events it accepts."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        project: int = 42,
        organization: str = "ocpizza",
        lifetime: float = 300.0,
    ) -> None:
        self.project = project
        self.organization = organization
        self.auth_token = secrets.token_hex(32)
        self.releases: dict[str, dict[str, Any]] = {}
        self.deploys: list[dict[str, Any]] = []
        self.public_key = secrets.token_hex(16)
        self.lifetime = lifetime
        self.events: list[dict[str, Any]] = []
        self.envelopes: list[Envelope] = []
        self.requests: list[tuple[str, int]] = []  # (path without query, status)
        self.raw: list[bytes] = []
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The base URL of the web API (Sentry's ``https://sentry.io``)."""
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def dsn(self) -> str:
        host, port = self.address
        return f"http://{self.public_key}@{host}:{port}/{self.project}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with stub._lock:
                    stub.requests.append((urlsplit(self.path).path, status))

            def _web_api(self, path: str) -> None:
                releases, deploys = RELEASES.match(path), DEPLOYS.match(path)
                match = releases or deploys
                body = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), MAX_BODY))
                if self.headers.get("Authorization", "") != f"Bearer {stub.auth_token}":
                    return self._answer(401, {"detail": "Invalid token"})
                if not match or match["org"] != stub.organization:
                    return self._answer(404, {"detail": "The requested resource does not exist"})
                try:
                    data = json.loads(body)
                except ValueError:
                    return self._answer(400, {"detail": "body is not JSON"})
                with stub._lock:
                    if releases:
                        version = data.get("version") if isinstance(data, dict) else None
                        if not version or not data.get("projects"):
                            return self._answer(400, {"detail": "version and projects required"})
                        status = 208 if version in stub.releases else 201
                        stub.releases.setdefault(version, data)
                        stub._lock.notify_all()
                        return self._answer(status, {"version": version})
                    version = unquote(match["version"])
                    if version not in stub.releases:
                        return self._answer(404, {"detail": "unknown release"})
                    if not isinstance(data, dict) or not data.get("environment"):
                        return self._answer(400, {"detail": "environment required"})
                    stub.deploys.append({**data, "version": version})
                    stub._lock.notify_all()
                    return self._answer(201, {"environment": data["environment"]})

            def do_POST(self) -> None:
                if urlsplit(self.path).path.startswith("/api/0/"):
                    return self._web_api(urlsplit(self.path).path)
                match = PATH.match(urlsplit(self.path).path)
                if not match:
                    return self._answer(404, {"detail": "unknown endpoint"})
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    return self._answer(413, {"detail": "too large"})
                body = self.rfile.read(length)
                if int(match["project"]) != stub.project:
                    return self._answer(404, {"detail": "unknown project"})
                if _sentry_key(self) != stub.public_key:
                    return self._answer(401, {"detail": "invalid sentry_key"})
                try:
                    data = _decode(body, self.headers.get("Content-Encoding", ""))
                    if match["endpoint"] == "store":
                        envelope = Envelope({}, [({"type": "event"}, json.loads(data))])
                    else:
                        envelope = parse_envelope(data)
                except (EnvelopeError, ValueError, OSError, ImportError) as exc:
                    return self._answer(400, {"detail": str(exc)})
                with stub._lock:
                    stub.raw.append(data)
                    stub.envelopes.append(envelope)
                    for item_header, payload in envelope.items:
                        if item_header.get("type") == "event" and isinstance(payload, dict):
                            stub.events.append(payload)
                    stub._lock.notify_all()
                event_id = envelope.header.get("event_id", "")
                return self._answer(200, {"id": event_id})

        return Handler

    def start(self) -> SentryStub:
        # A short poll: stop() returns within 0.05 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SentryStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        """The first recorded event ``predicate`` accepts; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no matching event within {timeout:g} s "
                        f"({len(self.events)} event(s), requests {self.requests})"
                    )
                self._lock.wait(left)
