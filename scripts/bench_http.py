#!/usr/bin/env python3
"""Requests per second of one URL, over keep-alive connections, for ``make bench``.

``--clients`` threads each keep ONE connection open (HTTP/1.1 keep-alive,
TLS for https:// URLs, reconnecting only when the server closes it) and send
GET requests back to back for ``--duration`` seconds; one JSON line is
printed::

    {"url": "...", "requests": N, "ok": N2xx, "other": n, "errors": n,
     "seconds": s, "rps": ok/s, "reconnects": n}

``make bench`` copies this file into a web host and runs it there, once
against nginx (https://127.0.0.1/healthz, the site's name as SNI and Host)
and once against gunicorn on an app server (http://<address>:<port>/healthz,
with the headers nginx adds), alternately, so both figures come from the same
client on the same host. Certificates are not verified: the figure is a
throughput, not a check of the site (verify.yml does that).

Standard library only; runs on the hosts' Python 3.11. Exit status 0, or 2
on bad arguments.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with the site's name as SNI (as a browser sends it)."""

    def __init__(self, address: str, port: int, server_name: str) -> None:
        self._ctx = ssl.create_default_context()
        self._ctx.check_hostname = False
        self._ctx.verify_mode = ssl.CERT_NONE
        super().__init__(address, port, timeout=10, context=self._ctx)
        self._server_name = server_name

    def connect(self) -> None:
        """TCP, then TLS with ``server_name`` as SNI."""
        http.client.HTTPConnection.connect(self)
        self.sock = self._ctx.wrap_socket(self.sock, server_hostname=self._server_name)


def _connect(url: urllib.parse.SplitResult, host_header: str) -> http.client.HTTPConnection:
    """A new connection to the URL's address (TLS with SNI ``host_header`` for https)."""
    if url.scheme == "https":
        return _SNIConnection(url.hostname or "", url.port or 443, host_header)
    return http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=10)


def load(
    url: str, host_header: str, headers: dict[str, str], clients: int, duration: float
) -> dict[str, object]:
    """Run the load; the counts and the requests per second of 2xx answers."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lock = threading.Lock()
    totals = {"requests": 0, "ok": 0, "other": 0, "errors": 0, "reconnects": 0}
    start = time.monotonic()
    stop = start + duration

    def client() -> None:
        counts = dict.fromkeys(totals, 0)
        conn = _connect(parts, host_header)
        while time.monotonic() < stop:
            try:
                conn.request("GET", path, headers={"Host": host_header, **headers})
                resp = conn.getresponse()
                resp.read()
                counts["requests"] += 1
                counts["ok" if 200 <= resp.status < 300 else "other"] += 1
                if resp.will_close:
                    conn.close()
                    conn = _connect(parts, host_header)
                    counts["reconnects"] += 1
            except (OSError, http.client.HTTPException):
                counts["errors"] += 1
                conn.close()
                conn = _connect(parts, host_header)
                counts["reconnects"] += 1
        conn.close()
        with lock:
            for key, value in counts.items():
                totals[key] += value

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    return {
        "url": url,
        **totals,
        "seconds": round(seconds, 2),
        "rps": round(totals["ok"] / seconds, 1) if seconds > 0 else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: bench_http.py URL --host NAME [--header K:V] [--clients N] [--duration S]."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url")
    parser.add_argument("--host", required=True, help="Host header (and SNI for https)")
    parser.add_argument("--header", action="append", default=[], help="extra header K:V")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients must be >= 1 and --duration > 0")
    headers = {}
    for item in args.header:
        key, sep, value = item.partition(":")
        if not sep:
            parser.error(f"--header {item!r}: expected NAME:VALUE")
        headers[key.strip()] = value.strip()
    print(json.dumps(load(args.url, args.host, headers, args.clients, args.duration)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
