#!/usr/bin/env python3
"""Stand-in webhook receiver: appends each POSTed JSON body, with the time it
arrived, as one line of a file (molecule/monitoring's tests read it).

    webhook-receiver ADDRESS PORT FILE
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    """Record a POST, answer 200."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(sys.argv[3], "a", encoding="utf-8") as out:
            out.write(
                json.dumps({"received": time.time(), "path": self.path, "body": json.loads(body)})
                + "\n"
            )
        self.send_response(200)
        self.end_headers()


HTTPServer((sys.argv[1], int(sys.argv[2])), Receiver).serve_forever()
