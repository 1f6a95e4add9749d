#!/usr/bin/env python3
"""Stand-in for gunicorn in the nginx scenario: answers every request with
the request itself as JSON (method, path, HTTP version, headers), so the
tests can see what nginx forwards.

- It adds the headers Django's SecurityMiddleware would (X-Frame-Options,
  Strict-Transport-Security) with other values than nginx's, to prove that
  nginx sends each security header once, with its own value.
- It counts the requests served on each TCP connection (keepalive).
- While /run/echo-backend.fail exists it answers 502 (failover tests).
- Under /django/ it answers as the app does where the role's check.yml looks
  (the visitor check runs with verify_url https://www.ocpizza.com/django):
  the admin redirects to its login, the health path reports the bare status
  or, when nginx says so (X-OCPizza-Health-Detail), the database and release.
"""

import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAIL_FLAG = "/run/echo-backend.fail"
APP_PREFIX = "/django"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo-backend/1.0"

    def _app(self) -> bool:
        """Answer as the app would under APP_PREFIX; False for any other path."""
        path = self.path.split("?", 1)[0]
        if path == f"{APP_PREFIX}/admin/":
            self.send_response(302)
            self.send_header("Location", f"{APP_PREFIX}/admin/login/?next={path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        if path == f"{APP_PREFIX}/healthz":
            # The bare status when nginx says the client gets no detail.
            health = {"status": "ok"}
            if self.headers.get("X-OCPizza-Health-Detail", "1") != "0":
                health |= {"database": True, "release": "echo-backend"}
            payload = json.dumps(health).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return True
        return False

    def _reply(self):
        if self._app():
            return
        self.served = getattr(self, "served", 0) + 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status = 502 if os.path.exists(FAIL_FLAG) else 200
        payload = json.dumps(
            {
                "backend": socket.gethostname(),
                "client": self.client_address[0],
                "method": self.command,
                "path": self.path,
                "version": self.request_version,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_length": len(body),
                "requests_on_connection": self.served,
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.send_header("Strict-Transport-Security", "max-age=1")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_HEAD = _reply

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
