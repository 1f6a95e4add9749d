#!/usr/bin/env python3
"""A bounded, continuous HTTPS load at the site, and a report of how it answered.

Several concurrent clients send GET requests to one HTTPS site for a fixed
time (``--duration``, a hard stop) or until the process gets SIGTERM/SIGINT,
then one JSON report is printed on stdout::

    {"requests": N, "failed": F, "p99_ms": X, "statuses": {"200": n, ...},
     "failures": [{"t": s, "kind": "status|reset|timeout|tls|other",
                   "status": 502, "detail": "..."}], ...}

A failure is any answer outside 2xx/3xx, a reset connection, a timeout, a TLS
error, or any other error. Every request opens its own connection (TLS
verified against ``--cacert``), as a new visitor would, so a server that
closes idle keep-alive connections during a reload is not counted against it.
``--resolve host:port:address`` works like curl's. Only loopback addresses are
loaded: the tool is for the lab and for a load balancer published on
127.0.0.1, never for someone else's site.

Standard library only (threads, ssl, http.client), so it runs anywhere
Python 3.11+ does. Exit status: 0 when no request failed, 1 when some did,
2 on bad arguments.

Example::

    scripts/loadcheck.py https://www.ocpizza.com:28443 --clients 4 --duration 60 \\
        --resolve www.ocpizza.com:28443:127.0.0.1 --cacert .ansible/platform-lab/ca.crt \\
        --path / --path /healthz
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import math
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

# How long, after the stop, requests still in flight may take to finish
# before the report is printed without them (counted as "abandoned").
STOP_GRACE_S = 1.0
TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
# Bytes of an answer's body read at most (the rest is discarded unread).
BODY_LIMIT = 1 << 20


@dataclass(frozen=True)
class Options:
    """What to load, how hard and for how long."""

    scheme_host: str
    port: int
    paths: tuple[str, ...]
    clients: int
    duration: float
    timeout: float
    cacert: str | None
    resolve: dict[tuple[str, int], str]
    max_failures: int = 1000
    # Requests per second per client (0: back to back).
    rate: float = 0.0

    def address(self) -> str:
        """The address connections go to (``--resolve`` applied)."""
        return self.resolve.get((self.scheme_host, self.port), self.scheme_host)


@dataclass
class Outcome:
    """One request's result."""

    t: float
    latency_s: float
    path: str
    status: int | None = None
    kind: str | None = None
    detail: str = ""
    retry_after: str | None = None
    title: str | None = None

    def failure(self) -> dict[str, Any]:
        """The failure record of the JSON report."""
        return {
            "t": round(self.t, 3),
            "kind": self.kind,
            "status": self.status,
            "detail": self.detail,
            "path": self.path,
            "retry_after": self.retry_after,
            "title": self.title,
        }


@dataclass
class Recorder:
    """Thread-safe collection of every outcome; closed once the report is taken."""

    started: float
    max_failures: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    failure_kinds: Counter[str] = field(default_factory=Counter)
    failures_dropped: int = 0
    first_failure_t: float | None = None
    last_failure_t: float | None = None
    closed: bool = False

    def add(self, out: Outcome) -> None:
        """Record one outcome (ignored once the report has been taken)."""
        with self.lock:
            if self.closed:
                return
            self.latencies.append(out.latency_s)
            if out.status is not None:
                self.statuses[str(out.status)] += 1
            if out.kind is None:
                return
            self.failure_kinds[signature(out)] += 1
            if self.first_failure_t is None:
                self.first_failure_t = out.t
            self.last_failure_t = out.t
            if len(self.failures) < self.max_failures:
                self.failures.append(out.failure())
            else:
                self.failures_dropped += 1

    def report(self, abandoned: int, stopped_by: str) -> dict[str, Any]:
        """Close the recorder and return the JSON report."""
        with self.lock:
            self.closed = True
            lat = sorted(self.latencies)
            failed = sum(self.failure_kinds.values())
            return {
                "requests": len(lat),
                "failed": failed,
                "p99_ms": round(percentile(lat, 99) * 1000, 1),
                "p50_ms": round(percentile(lat, 50) * 1000, 1),
                "max_ms": round((lat[-1] if lat else 0.0) * 1000, 1),
                "statuses": dict(sorted(self.statuses.items())),
                "failures": list(self.failures),
                "failures_dropped": self.failures_dropped,
                "failure_kinds": dict(sorted(self.failure_kinds.items())),
                "first_failure_t": _round(self.first_failure_t),
                "last_failure_t": _round(self.last_failure_t),
                "started": round(self.started, 3),
                "duration_s": round(time.time() - self.started, 3),
                "abandoned": abandoned,
                "stopped_by": stopped_by,
            }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def signature(out: Outcome) -> str:
    """A failure's kind, as counted in ``failure_kinds``: ``status 503``, ``reset``..."""
    return f"status {out.status}" if out.kind == "status" else str(out.kind)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, detail) of an exception raised by one request."""
    detail = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "reset", detail
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls", detail
    if isinstance(exc, TimeoutError):
        return "timeout", detail
    if isinstance(
        exc,
        ConnectionResetError
        | BrokenPipeError
        | ConnectionAbortedError
        | http.client.RemoteDisconnected
        | http.client.IncompleteRead,
    ):
        return "reset", detail
    return "other", detail


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection that dials the ``--resolve`` address, SNI and Host unchanged."""

    def __init__(self, opts: Options, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(opts.scheme_host, opts.port, timeout=timeout, context=context)
        dial = opts.address()

        def create(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            return socket.create_connection((dial, address[1]), *args, **kwargs)

        # http.client dials through this attribute; TLS still uses the site's name.
        self._create_connection = create


def one_request(
    opts: Options, context: ssl.SSLContext, path: str, started: float, timeout: float
) -> Outcome:
    """Send one GET on a new connection and classify its result."""
    begin = time.monotonic()
    out = Outcome(t=time.time() - started, latency_s=0.0, path=path)
    conn = _Connection(opts, context, timeout)
    try:
        conn.request(
            "GET",
            path,
            headers={"User-Agent": "ocpizza-loadcheck/1", "Connection": "close"},
        )
        resp = conn.getresponse()
        body = resp.read(BODY_LIMIT)
        out.status = resp.status
        if not 200 <= resp.status < 400:
            out.kind = "status"
            out.detail = resp.reason
            out.retry_after = resp.getheader("Retry-After")
            found = TITLE_RE.search(body)
            if found:
                out.title = " ".join(found.group(1).decode("utf-8", "replace").split())
    except Exception as exc:  # every error is a result to report, none stops the load
        out.kind, out.detail = classify(exc)
    finally:
        conn.close()
        out.latency_s = time.monotonic() - begin
    return out


def make_context(cacert: str | None) -> ssl.SSLContext:
    """A client TLS context verifying the site's certificate (against ``cacert`` if given)."""
    return ssl.create_default_context(cafile=cacert)


def _worker(
    index: int,
    opts: Options,
    context: ssl.SSLContext,
    recorder: Recorder,
    stop: threading.Event,
    deadline: float,
) -> None:
    """One client: requests back to back (or ``opts.rate`` a second), cycling through
    the paths, until the stop."""
    n = index
    interval = 1.0 / opts.rate if opts.rate > 0 else 0.0
    # Clients spread over the first interval, so that paced requests do not come in bursts.
    next_start = time.monotonic() + interval * index / max(opts.clients, 1)
    while not stop.is_set():
        if interval and stop.wait(max(0.0, next_start - time.monotonic())):
            return
        next_start = max(next_start + interval, time.monotonic())
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        path = opts.paths[n % len(opts.paths)]
        n += 1
        # No request outlives the hard stop by more than the grace.
        timeout = min(opts.timeout, remaining + STOP_GRACE_S)
        out = one_request(opts, context, path, recorder.started, timeout)
        if out.kind == "timeout" and timeout < opts.timeout and time.monotonic() >= deadline:
            return  # cut by the hard stop, not a timeout of the site
        recorder.add(out)


def run(opts: Options, stop: threading.Event | None = None) -> dict[str, Any]:
    """Load the site with ``opts.clients`` clients until ``opts.duration`` or ``stop``.

    Returns the report. ``stop`` (set by the signal handlers of :func:`main`)
    ends the run early; the report is still complete for what was sent.
    """
    stop = stop or threading.Event()
    context = make_context(opts.cacert)
    recorder = Recorder(started=time.time(), max_failures=opts.max_failures)
    deadline = time.monotonic() + opts.duration
    workers = [
        threading.Thread(
            target=_worker,
            args=(i, opts, context, recorder, stop, deadline),
            name=f"loadcheck-{i}",
            daemon=True,
        )
        for i in range(opts.clients)
    ]
    for w in workers:
        w.start()
    stopped_by = "duration"
    while time.monotonic() < deadline:
        if stop.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            stopped_by = "signal"
            break
    stop.set()
    grace_end = time.monotonic() + STOP_GRACE_S
    for w in workers:
        w.join(max(0.0, grace_end - time.monotonic()))
    abandoned = sum(1 for w in workers if w.is_alive())
    return recorder.report(abandoned, stopped_by)


def parse_resolve(values: Sequence[str]) -> dict[tuple[str, int], str]:
    """``host:port:address`` entries (curl's ``--resolve``) as {(host, port): address}."""
    out: dict[tuple[str, int], str] = {}
    for value in values:
        host, sep, rest = value.partition(":")
        port, sep2, addr = rest.partition(":")
        if not (sep and sep2 and host and port.isdigit() and addr):
            raise ValueError(f"--resolve {value!r}: expected host:port:address")
        out[(host, int(port))] = addr.strip("[]")
    return out


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Command line -> :class:`Options`; bad input exits with status 2 and a message."""
    parser = argparse.ArgumentParser(
        prog="loadcheck.py",
        description="Bounded HTTPS load on a loopback-published site; prints a JSON report.",
    )
    parser.add_argument("url", help="site root, e.g. https://www.ocpizza.com:28443")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument(
        "--duration", type=float, default=30.0, help="hard stop after S seconds (default 30)"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="per-request timeout in seconds (default 5)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="requests per second per client (default 0: back to back)",
    )
    parser.add_argument("--cacert", help="CA bundle the site's certificate is verified against")
    parser.add_argument(
        "--resolve", action="append", default=[], help="host:port:address, like curl's"
    )
    parser.add_argument(
        "--path", action="append", dest="paths", help="path to request (repeatable; default /)"
    )
    parser.add_argument(
        "--max-failures",
        type=int,
        default=1000,
        help="failures listed one by one at most (all are counted; default 1000)",
    )
    ns = parser.parse_args(argv)
    url = urlsplit(ns.url)
    if url.scheme != "https" or not url.hostname:
        parser.error(f"url {ns.url!r}: an https:// URL with a host is required")
    if ns.clients < 1 or ns.clients > 64:
        parser.error("--clients must be between 1 and 64")
    if not 0 < ns.duration <= 3600:
        parser.error("--duration must be between 0 and 3600 seconds")
    if ns.timeout <= 0:
        parser.error("--timeout must be positive")
    if not 0 <= ns.rate <= 1000:
        parser.error("--rate must be between 0 (back to back) and 1000 requests per second")
    paths = tuple(ns.paths or ["/"])
    bad = [p for p in paths if not p.startswith("/")]
    if bad:
        parser.error(f"--path {bad[0]!r}: a path starts with /")
    try:
        resolve = parse_resolve(ns.resolve)
    except ValueError as exc:
        parser.error(str(exc))
    opts = Options(
        scheme_host=url.hostname,
        port=url.port or 443,
        paths=paths,
        clients=ns.clients,
        duration=ns.duration,
        timeout=ns.timeout,
        cacert=ns.cacert,
        resolve=resolve,
        max_failures=max(0, ns.max_failures),
        rate=ns.rate,
    )
    if not is_loopback(opts.address()):
        parser.error(
            f"{opts.address()} is not a loopback address: loadcheck only loads a site "
            "published on this machine (use --resolve host:port:127.0.0.1)"
        )
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load, print the JSON report on stdout and a one-line summary on stderr."""
    opts = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    report = run(opts, stop)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    print(
        f"loadcheck: {report['requests']} requests, {report['failed']} failed, "
        f"p99 {report['p99_ms']} ms ({report['stopped_by']})",
        file=sys.stderr,
    )
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
