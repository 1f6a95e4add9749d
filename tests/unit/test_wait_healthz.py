"""role app's files/wait_healthz.py: the /healthz wait of a release switch stops
as soon as supervisor reports gunicorn down, and only then (issue 15's fail-fast).

A local HTTP server stands in for gunicorn, a fake ``supervisorctl`` on PATH for
supervisor. Each case takes at most a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "app" / "files" / "wait_healthz.py"


class Health(BaseHTTPRequestHandler):
    """Answers what the test sets in ``server.answer``: (status, release)."""

    def do_GET(self) -> None:
        status, release = self.server.answer  # type: ignore[attr-defined]
        body = json.dumps(
            {"status": "ok" if status == 200 else "error", "release": release}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gunicorn() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), Health)
    server.answer = (500, None)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def run(
    tmp_path: Path, server: HTTPServer, states: list[str], timeout: int
) -> tuple[int, str, float]:
    """Run the script with a supervisorctl that reports each of ``states`` in turn (the last one stays)."""
    (tmp_path / "states").write_text("\n".join(states) + "\n")
    fake = tmp_path / "supervisorctl"
    fake.write_text(
        "#!/bin/sh\n"
        f"states={tmp_path}/states\n"
        'line=$(head -n 1 "$states")\n'
        '[ "$(wc -l < "$states")" -gt 1 ] && sed -i 1d "$states"\n'
        'echo "$2 $line"\n'
    )
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    url = f"http://127.0.0.1:{server.server_port}/healthz"
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.read_text(), url, "20261130-abc1234", "gunicorn", str(timeout)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr, time.monotonic() - start


def test_a_release_that_answers_is_accepted(tmp_path, gunicorn):
    gunicorn.answer = (200, "20261130-abc1234")
    rc, output, _ = run(tmp_path, gunicorn, ["RUNNING   pid 10, uptime 0:01:00"], timeout=10)
    assert rc == 0, output
    assert "answers 200 with release 20261130-abc1234" in output


@pytest.mark.parametrize(
    "state", ["BACKOFF   Exited too quickly", "FATAL     Exited too quickly", "EXITED    Nov 30"]
)
def test_a_crashed_gunicorn_stops_the_wait_at_once(tmp_path, gunicorn, state):
    """The old wait probed until the timeout (60 s by default); this one stops at the first look."""
    rc, output, seconds = run(
        tmp_path, gunicorn, ["RUNNING   pid 10, uptime 0:01:00", state], timeout=60
    )
    assert rc == 1
    assert f"supervisor reports {state.split()[0]}" in output
    assert "last /healthz: HTTP 500" in output
    assert seconds < 10


def test_a_replaced_master_stops_the_wait(tmp_path, gunicorn):
    """A master that died and was started again by supervisor, between two looks."""
    states = [
        "RUNNING   pid 10, uptime 0:01:00",
        "RUNNING   pid 10, uptime 0:01:01",
        "RUNNING   pid 42, uptime 0:00:01",
    ]
    rc, output, seconds = run(tmp_path, gunicorn, states, timeout=60)
    assert rc == 1
    assert "supervisor reports RUNNING with a new master" in output
    assert seconds < 10


def test_a_running_gunicorn_that_answers_500_is_waited_for_until_the_timeout(tmp_path, gunicorn):
    """Not down: the wait lasts its whole timeout, as before, then names the last answer."""
    rc, output, seconds = run(tmp_path, gunicorn, ["RUNNING   pid 10, uptime 0:01:00"], timeout=2)
    assert rc == 1
    assert "did not answer 200 with release 20261130-abc1234 within 2 s; last: HTTP 500" in output
    assert 2 <= seconds < 10


def test_another_release_answering_is_not_accepted(tmp_path, gunicorn):
    gunicorn.answer = (200, "20261129-0000000")
    rc, output, _ = run(tmp_path, gunicorn, ["RUNNING   pid 10, uptime 0:01:00"], timeout=2)
    assert rc == 1
    assert "last: HTTP 200, release '20261129-0000000'" in output
