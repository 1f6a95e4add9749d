"""Helpers of the app scenario's tests: names, HTTP probes, playbook runs, and
the fixtures every test module of the scenario uses (``app``, ``serving``).

A test module loads the fixtures with ``pytest_plugins = ("appscenario",)``:
a conftest.py here would shadow molecule/conftest.py (``from conftest import ...``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import testinfra
from conftest import container_ip, ephemeral_dir

APP = "ocpizza-mol-app-app"
DB = "ocpizza-mol-app-db"
FORGE = "ocpizza-mol-app-forge"
APP_ROOT = "/srv/ocpizza"
CONF_HOME = "/etc/ocpizza"
ENV_FILE = f"{CONF_HOME}/app.env"
SCENARIO_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = SCENARIO_DIR.parent.parent
EXAMPLE_DIR = PROJECT_DIR / "examples" / "ocpizza"
DB_PASSWORD = "p@ss:w/rd#%?&"
# Logs of the playbooks the tests run, and their wall times; kept after the
# scenario's destroy (.ansible/ is git-ignored).
LOG_DIR = PROJECT_DIR / ".ansible" / "logs" / "molecule-app"
LOG_DIR.mkdir(parents=True, exist_ok=True)


@dataclass
class Response:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict:
        return json.loads(self.body)


def http_get(path: str, proxied: bool = False, timeout: float = 5) -> Response:
    """GET http://<app>:8000<path> from the control node (as nginx would, if proxied)."""
    request = urllib.request.Request(f"http://{container_ip(APP)}:8000{path}")
    if proxied:
        request.add_header("Host", "www.ocpizza.com")
        request.add_header("X-Forwarded-Proto", "https")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, answer.read().decode(), dict(answer.headers))
    except urllib.error.HTTPError as error:
        return Response(error.code, error.read().decode(), dict(error.headers))


def healthz(timeout: float = 5) -> dict:
    answer = http_get("/healthz", timeout=timeout)
    assert answer.status == 200, answer.body
    return answer.json()


def wait_healthz(release: str | None = None, deadline: float = 60) -> dict:
    """Wait until /healthz answers 200 (with that release, if given)."""
    end = time.monotonic() + deadline
    last: object = None
    while time.monotonic() < end:
        try:
            last = healthz(timeout=3)
            if release is None or last.get("release") == release:
                return last
        except (AssertionError, OSError) as error:
            last = error
        time.sleep(0.2)
    raise AssertionError(f"/healthz did not answer {release or 'ok'} in {deadline}s: {last}")


class Poller:
    """Probe /healthz in a loop (as a load balancer would) and count failures."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.ok = 0
        self.failures: list[str] = []
        self.releases: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = http_get("/healthz", timeout=10)
                if answer.status == 200:
                    self.ok += 1
                    release = answer.json()["release"]
                    if not self.releases or self.releases[-1] != release:
                        self.releases.append(release)
                else:
                    self.failures.append(f"HTTP {answer.status}")
            except OSError as error:
                self.failures.append(repr(error))
            time.sleep(self.interval)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class Run:
    rc: int
    output: str
    seconds: float


def ansible_playbook(playbook: str, extra_vars: dict, log_name: str) -> Run:
    """Run a playbook of this scenario against molecule's inventory; keep its log."""
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    binary = Path(sys.executable).parent / "ansible-playbook"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars, handle)
    try:
        start = time.monotonic()
        result = subprocess.run(
            [str(binary), "-i", str(inventory), str(SCENARIO_DIR / playbook), "-e", f"@{handle.name}"],
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - start
    finally:
        os.unlink(handle.name)
    output = result.stdout + result.stderr
    (LOG_DIR / f"{log_name}.log").write_text(output)
    record_timing(log_name, seconds, result.returncode)
    return Run(result.returncode, output, seconds)


def record_timing(name: str, seconds: float, rc: int) -> None:
    """Append a wall time to LOG_DIR/timings.txt (and print it)."""
    line = f"{time.strftime('%H:%M:%S')} {name}: {seconds:.1f} s (rc={rc})"
    print(line)
    with (LOG_DIR / "timings.txt").open("a") as handle:
        handle.write(line + "\n")


def push(files: list[dict], message: str, branch: str = "production") -> str:
    """Commit files on a branch of the forge's ocpizza.git; return the new sha."""
    result_file = ephemeral_dir() / "push-result.txt"
    # Contents go as files: extra variables are templated, and Django templates
    # ({% load static %}) would not survive that.
    staged = ephemeral_dir() / "push-files"
    staged.mkdir(exist_ok=True)
    files = [dict(entry) for entry in files]
    for number, entry in enumerate(files):
        if "content" in entry:
            path = staged / f"{number}-{Path(entry['path']).name}"
            path.write_text(entry.pop("content"))
            entry["src"] = str(path)
    run = ansible_playbook(
        "push.yml",
        {
            "forge_push_repo": "ocpizza",
            "forge_push_branch": branch,
            "forge_push_message": message,
            "forge_push_files": files,
            "push_result_file": str(result_file),
        },
        log_name="push-" + message.split()[0].lower(),
    )
    assert run.rc == 0, run.output[-3000:]
    return result_file.read_text().strip()


def deploy(log_name: str, **extra_vars: object) -> Run:
    return ansible_playbook("deploy.yml", dict(extra_vars), log_name=log_name)


def task_was_skipped(output: str, task: str) -> bool:
    """Whether the named task of a playbook's output was skipped (or never ran)."""
    marker = f"TASK [{task}]"
    if marker not in output:
        return True
    after = output.split(marker, 1)[1].split("TASK [", 1)[0]
    return "skipping:" in after and "changed:" not in after and "ok:" not in after


def sh(host: object, command: str) -> str:
    """Run a shell command on a testinfra host; fail with its output if it fails."""
    result = host.run(command)
    assert result.rc == 0, f"{command}: rc={result.rc}\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()


def manage(host: object, *args: str) -> str:
    """ocpizza-manage on the app server (as the app user)."""
    return sh(host, "ocpizza-manage " + " ".join(shlex.quote(a) for a in args))


def django_eval(host: object, code: str) -> str:
    """Run Python in the live release's Django shell; return what it printed."""
    return manage(host, "shell", "--no-imports", "-c", code)


def forge_git(host: object, repo: str, *args: str) -> str:
    """git in one of the forge's bare repositories (owned by the git user)."""
    quoted = " ".join(shlex.quote(a) for a in args)
    return sh(host, f"git -c safe.directory='*' -C /srv/git/{repo}.git {quoted}")


def live_release(host: object) -> str:
    return Path(sh(host, f"readlink {APP_ROOT}/current")).name


def releases(host: object) -> list[str]:
    return sorted(sh(host, f"ls -1 {APP_ROOT}/releases").split())


def gunicorn_pid(host: object) -> int:
    return int(sh(host, "supervisorctl pid gunicorn"))


def wait_serving(host: object, deadline: float = 60) -> int:
    """Wait until gunicorn serves: supervisor says RUNNING and /healthz answers
    with the live release. Bounded; returns the master's pid.

    Each test that needs gunicorn calls it (through its `serving` fixture), so
    no test depends on how long an earlier one left gunicorn restarting.
    """
    end = time.monotonic() + deadline
    status = host.run("supervisorctl status gunicorn").stdout
    while "RUNNING" not in status:
        if time.monotonic() > end:
            raise AssertionError(f"gunicorn not RUNNING within {deadline} s: {status}")
        time.sleep(0.2)
        status = host.run("supervisorctl status gunicorn").stdout
    wait_healthz(live_release(host), deadline=max(1.0, end - time.monotonic()))
    return gunicorn_pid(host)


@pytest.fixture(scope="module")
def app(get_host: Callable[[str], testinfra.host.Host]) -> testinfra.host.Host:
    """The app server."""
    return get_host(APP)


@pytest.fixture
def serving(app: testinfra.host.Host) -> int:
    """gunicorn up, waited for with a bound; the master's pid."""
    return wait_serving(app)
