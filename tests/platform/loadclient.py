"""Run an operation of the platform tests under load: scripts/loadcheck.py in the background.

Usage in a platform test::

    from loadclient import under_load

    with under_load(platform, clients=4, max_seconds=300, paths=("/", "/healthz")) as load:
        res = platform.playbook("deploy.yml")
    assert load.report["failed"] == 0, load.failures_text()
    print(load.summary())   # "N requests, F failed, p99 X ms"

The load goes to the load balancer's port published on 127.0.0.1, with the
site's name (``--resolve``) and the lab CA, like a visitor. On leaving the
``with`` block the load check gets SIGTERM, its JSON report is parsed into
``load.report``, kept in ``<lab dir>/load/<test>.json``, and its summary
recorded: the platform run prints every one at the end ("load: <test id>:
<summary>", the ``pytest_terminal_summary`` hook of conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from conftest import Platform

ROOT = Path(__file__).resolve().parents[2]
LOADCHECK = ROOT / "scripts" / "loadcheck.py"

# Each client's requests per second. Paced, not back to back: the load check,
# the lab's servers and the operation under test share the control node's two
# cores, and clients sending back to back starve the operation and the servers
# until requests time out on the machine, not on the site. Four clients at 10/s
# (40 requests a second, each on a new TLS connection) still put several
# requests a second on every host of the load path, so that a host that drops
# requests for even a fraction of a second during a switch is seen.
RATE = float(os.environ.get("OCPIZZA_LOAD_RATE", "10"))

# (test id, summary) of every run under load of this session, in order.
RECORDED: list[tuple[str, str]] = []


@dataclass
class Load:
    """One run of the load check; ``report`` is filled when the ``with`` block ends."""

    command: list[str]
    report: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""

    def summary(self) -> str:
        """One line: "N requests, F failed, p99 X ms" (plus a warning if the load ended early)."""
        r = self.report
        text = f"{r.get('requests', 0)} requests, {r.get('failed', 0)} failed, p99 {r.get('p99_ms', 0)} ms"
        if r.get("stopped_by") == "duration":
            text += " (the load stopped at max_seconds, before the operation ended)"
        return text

    def started(self) -> float:
        """Epoch time of the load's start: a failure happened at ``started() + failure["t"]``."""
        return float(self.report.get("started", 0.0))

    def failures_text(self, limit: int = 10) -> str:
        """The first failures, for an assertion message."""
        r = self.report
        lines = [f"{self.summary()}; kinds {r.get('failure_kinds')}"]
        lines += [json.dumps(f) for f in r.get("failures", [])[:limit]]
        return "\n".join(lines)


def _test_id() -> str:
    """The running test's id (from pytest's PYTEST_CURRENT_TEST), or "?" outside a test."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "?")
    return current.rsplit(" (", 1)[0]


def command(
    platform: Platform,
    clients: int,
    max_seconds: float,
    paths: Sequence[str],
    timeout: float = 10,
    rate: float = 0,
) -> list[str]:
    """The loadcheck command line against the platform's load balancer."""
    site = urlsplit(platform.site)
    host, port = site.hostname, site.port or 443
    cmd = [
        sys.executable,
        str(LOADCHECK),
        platform.site,
        "--resolve",
        f"{host}:{port}:127.0.0.1",
        "--cacert",
        str(platform.ca),
        "--clients",
        str(clients),
        "--duration",
        str(max_seconds),
        "--timeout",
        str(timeout),
        "--max-failures",
        "5000",
        "--rate",
        str(rate),
    ]
    for path in paths:
        cmd += ["--path", path]
    return cmd


@contextmanager
def under_load(
    platform: Platform,
    clients: int = 4,
    max_seconds: float = 300,
    paths: Sequence[str] = ("/", "/healthz"),
    timeout: float = 10,
    rate: float = RATE,
) -> Iterator[Load]:
    """Send load at the site for the duration of the ``with`` block (at most ``max_seconds``).

    ``timeout`` is each request's limit in seconds: 10 by default, since the
    platform run shares two cores with the operation under test. ``rate`` is
    each client's requests per second (:data:`RATE`; 0: back to back).
    """
    load = Load(command=command(platform, clients, max_seconds, paths, timeout, rate))
    proc = subprocess.Popen(
        load.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    time.sleep(1.0)  # the clients are sending before the operation starts
    if proc.poll() is not None:
        out, err = proc.communicate()
        raise RuntimeError(f"loadcheck ended at once ({proc.returncode}): {err}{out}")
    try:
        yield load
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, load.stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, load.stderr = proc.communicate()
        load.report = json.loads(out) if out.strip() else {"error": load.stderr}
        test_id = _test_id()
        RECORDED.append((test_id, load.summary()))
        keep = platform.lab_dir / "load"
        keep.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id.split("/")[-1])
        (keep / f"{name}.json").write_text(json.dumps(load.report, indent=1) + "\n")
