"""Sentry: ``manage.py sentry_check`` against a local Sentry endpoint, and the scrubbing.

The endpoint is a few lines of stdlib HTTP server that answers like Sentry
(200, or 401 for a wrong key) and keeps the envelopes it receives.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import sentry_sdk
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import SimpleTestCase, override_settings
from ocpizza.observability import FILTERED, scrub_event, sentry_release

KEY = "0123456789abcdef0123456789abcdef"


class _Endpoint:
    """A Sentry-like endpoint on 127.0.0.1 recording the envelopes' JSON items."""

    def __init__(self, status: int | None = None) -> None:
        self.items: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                auth = self.headers.get("X-Sentry-Auth", "")
                code = status or (200 if f"sentry_key={KEY}" in auth else 401)
                if code == 200:
                    endpoint.raw.append(body)
                    for line in body.splitlines():
                        try:
                            item = json.loads(line)
                        except ValueError:
                            continue
                        if isinstance(item, dict) and "exception" in item:
                            endpoint.items.append(item)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def dsn(self, key: str = KEY) -> str:
        return f"http://{key}@127.0.0.1:{self.server.server_address[1]}/7"

    def __enter__(self) -> _Endpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(*args: str, **settings: Any) -> str:
    out = StringIO()
    with override_settings(**settings):
        call_command("sentry_check", "--timeout", "5", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


class SentryCheckCommandTests(SimpleTestCase):
    def tearDown(self) -> None:
        # Leave no client behind for the other tests.
        sentry_sdk.init(dsn=None)

    def test_sends_an_event_with_release_and_environment(self) -> None:
        with _Endpoint() as endpoint:
            out = run(SENTRY_DSN=endpoint.dsn(), SENTRY_ENVIRONMENT="lab", SENTRY_RELEASE="r-42")
        match = re.fullmatch(r"event ([0-9a-f]{32}) accepted \(marker ([0-9a-f]{32})\)", out)
        self.assertIsNotNone(match, out)
        [event] = endpoint.items
        self.assertEqual(event["event_id"], match[1])
        self.assertEqual(event["release"], "r-42")
        self.assertEqual(event["environment"], "lab")
        exception = event["exception"]["values"][-1]
        self.assertEqual(exception["type"], "SentryCheckError")
        self.assertIn(match[2], exception["value"])

    def test_dsn_option_overrides_the_setting(self) -> None:
        with _Endpoint() as endpoint:
            run("--dsn", endpoint.dsn(), SENTRY_DSN="", SENTRY_RELEASE="r-43")
        self.assertEqual([e["release"] for e in endpoint.items], ["r-43"])

    def test_release_directory_is_reported_as_its_commit(self) -> None:
        # app1 and app2 build the same commit at different times.
        with _Endpoint() as endpoint:
            run(SENTRY_DSN=endpoint.dsn(), SENTRY_RELEASE="20261130151822-d652015")
        self.assertEqual([e["release"] for e in endpoint.items], ["d652015"])
        self.assertEqual(sentry_release("20261130151900-d652015"), "d652015")
        self.assertEqual(sentry_release("v1.2-rc"), "v1.2-rc")

    def test_not_configured_fails(self) -> None:
        with self.assertRaisesMessage(CommandError, "SENTRY_DSN is empty"):
            run(SENTRY_DSN="")

    def test_refused_event_fails(self) -> None:
        with _Endpoint() as endpoint, self.assertRaisesMessage(CommandError, "HTTP 401"):
            run(SENTRY_DSN=endpoint.dsn(key="f" * 32))
        self.assertEqual(endpoint.items, [])

    def test_unreachable_endpoint_fails(self) -> None:
        with _Endpoint() as endpoint:
            dsn = endpoint.dsn()
        with self.assertRaisesMessage(CommandError, "not delivered"):
            run(SENTRY_DSN=dsn)


class ScrubEventTests(SimpleTestCase):
    def test_cookies_authorization_and_secrets_are_removed(self) -> None:
        event = {
            "message": "kept",
            "request": {
                "url": "https://www.ocpizza.com/admin/login/",
                "cookies": {"sessionid": "s3ss10n"},
                "headers": {
                    "Authorization": "Bearer t0k3n",
                    "Cookie": "sessionid=s3ss10n",
                    "User-Agent": "kept-agent",
                },
                "query_string": "next=/admin/&token=t0k3n",
                "data": {"username": "admin", "password": "hunter2", "csrfmiddlewaretoken": "c"},
            },
            "exception": {
                "values": [
                    {
                        "stacktrace": {
                            "frames": [{"vars": {"db_password": "pw", "api_key": "k", "n": "1"}}]
                        }
                    }
                ]
            },
            "extra": {"SECRET_KEY": "django-secret", "nested": [{"paypal_client_secret": "x"}]},
        }
        scrubbed = scrub_event(event, {})
        text = json.dumps(scrubbed)
        for secret in ("s3ss10n", "t0k3n", "hunter2", "django-secret", '"pw"', '"k"', '"x"'):
            self.assertNotIn(secret, text)
        request = scrubbed["request"]
        self.assertNotIn("cookies", request)
        self.assertEqual(request["headers"], {"User-Agent": "kept-agent"})
        self.assertEqual(request["data"]["username"], "admin")
        self.assertEqual(request["data"]["password"], FILTERED)
        self.assertIn("next=%2Fadmin%2F", request["query_string"])
        self.assertEqual(scrubbed["message"], "kept")
        frame_vars = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]
        self.assertEqual(frame_vars["n"], "1")

    def test_sentry_check_event_is_scrubbed_too(self) -> None:
        # The command's client uses the same before_send: its local ``dsn``
        # (the capturing frame's variables go with the event) is filtered.
        with _Endpoint() as endpoint:
            run(SENTRY_DSN=endpoint.dsn())
        [event] = endpoint.items
        frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
        handle = [f["vars"] for f in frames if f.get("function") == "handle" and "vars" in f]
        self.assertTrue(handle, frames)
        self.assertEqual(handle[-1]["dsn"], FILTERED)
