"""Stand-in monitoring endpoint (healthchecks.io style) for the backup scenario.

Answers 200 to every GET and appends "<time> <path>" to the log file given as
the second argument, so the tests can see which check-ins arrived.
"""

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with open(LOG, "a", encoding="utf-8") as fh:
            fh.write(f"{time.time():.3f} {self.path}\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"OK")


ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
