"""Issue 16: gunicorn's configuration keeps the app's metrics right across workers.

The template (roles/gunicorn/templates/gunicorn.conf.py.j2) is rendered with
Ansible's filters and run as gunicorn runs it. gunicorn has several workers
and recycles them (max_requests, a deploy's HUP): django-prometheus counts in
prometheus_client's multiprocess mode, so the configuration must give every
worker the same PROMETHEUS_MULTIPROC_DIR, empty it when the master starts
(never on a HUP, which re-reads the file), and tell prometheus_client when a
worker exits. The end-to-end count over real workers is measured on the lab
(docs: the report of issue 16).
"""

from __future__ import annotations

import os
import runpy
import stat
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from role_templates import role_template_env


def render(home: Path, env_file: Path) -> str:
    """The configuration role gunicorn writes, for an app home and environment file."""
    env = role_template_env("gunicorn")
    values: dict[str, Any] = {
        "ansible_managed": "Ansible managed",
        "gunicorn_env_file": str(env_file),
        "gunicorn_wsgi_app": "ocpizza.wsgi:application",
        "gunicorn_chdir": "/srv/ocpizza/current",
        "gunicorn_bind_address": "10.0.0.5",
        "gunicorn_port": 8000,
        "gunicorn_workers": 3,
        "gunicorn_worker_class": "sync",
        "gunicorn_timeout": 30,
        "gunicorn_graceful_timeout": 30,
        "gunicorn_keepalive": 5,
        "gunicorn_max_requests": 1000,
        "gunicorn_max_requests_jitter": 100,
        "gunicorn_forwarded_allow_ips": ["10.0.0.7"],
        "gunicorn_loglevel": "info",
        "gunicorn_access_log": True,
        "gunicorn_home": str(home),
        "gunicorn_program": "gunicorn",
    }
    return env.get_template("gunicorn.conf.py.j2").render(**values)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The configuration's globals, read as gunicorn reads the file."""
    env_file = tmp_path / "app.env"
    env_file.write_text("DJANGO_SETTINGS_MODULE=settings.production\nSECRET_KEY='s e'\n")
    home = tmp_path / "home"
    home.mkdir()
    path = tmp_path / "gunicorn.conf.py"
    path.write_text(render(home, env_file))
    # Restored after the test: reading the file sets it in this process.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "unset-by-the-test")
    return runpy.run_path(str(path))


class Worker:
    def __init__(self, pid: int) -> None:
        self.pid = pid


def test_every_worker_gets_the_same_metrics_directory(config):
    directory = config["METRICS_DIR"]
    assert directory.endswith("/home/prometheus-gunicorn")
    # The workers inherit the master's environment, and gunicorn sets raw_env in them.
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == directory
    assert f"PROMETHEUS_MULTIPROC_DIR={directory}" in config["raw_env"]
    assert "SECRET_KEY=s e" in config["raw_env"]
    # Reading the file (at start, on every HUP, and the role's validate) changes nothing on disk.
    assert not Path(directory).exists()


def test_the_master_start_empties_the_directory_of_a_previous_master(config):
    directory = Path(config["METRICS_DIR"])
    directory.mkdir()
    stale = directory / "counter_4242.db"
    stale.write_bytes(b"counts of a worker of the previous master")
    config["on_starting"](server=None)
    assert directory.is_dir() and list(directory.iterdir()) == []
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    config["on_starting"](server=None)  # and again, on the next start
    assert directory.is_dir()


def test_a_worker_that_exits_is_marked_dead_in_the_metrics_directory(config, monkeypatch):
    calls: list[tuple[int, str]] = []
    package = types.ModuleType("prometheus_client")
    multiprocess = types.ModuleType("prometheus_client.multiprocess")
    multiprocess.mark_process_dead = lambda pid, path=None: calls.append((pid, path))  # type: ignore[attr-defined]
    package.multiprocess = multiprocess  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prometheus_client", package)
    monkeypatch.setitem(sys.modules, "prometheus_client.multiprocess", multiprocess)
    config["child_exit"](server=None, worker=Worker(31337))
    assert calls == [(31337, config["METRICS_DIR"])]


def test_a_release_without_prometheus_client_still_reaps_its_workers(config, monkeypatch):
    # A rollback to a release that predates the metrics: the hook must not fail.
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    config["child_exit"](server=None, worker=Worker(31337))
