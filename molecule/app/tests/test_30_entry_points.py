"""The entry points playbooks call: gunicorn's check.yml and control.yml,
app's rollback.yml (through the one release switch)."""

from __future__ import annotations

import json

from appscenario import (
    APP,
    APP_ROOT,
    ansible_playbook,
    gunicorn_pid,
    healthz,
    live_release,
    sh,
)
from conftest import ephemeral_dir

pytest_plugins = ("appscenario",)  # fixtures app and serving


def call(log_name: str, role: str, entry: str, **extra: object):
    """Run one entry point; return the run and what it recorded ({} if it failed)."""
    recorded_file = ephemeral_dir() / "recorded.json"
    recorded_file.unlink(missing_ok=True)
    run = ansible_playbook(
        "entry_points.yml",
        {"entry_role": role, "entry": entry, "recorded_file": str(recorded_file), **extra},
        log_name=log_name,
    )
    recorded = json.loads(recorded_file.read_text()) if recorded_file.exists() else {}
    return run, recorded


def test_gunicorn_check_reports_a_healthy_gunicorn(serving):
    run, recorded = call("entry-check-ok", "gunicorn", "check.yml")
    assert run.rc == 0, run.output[-3000:]
    assert [c["ok"] for c in recorded["checks"]] == [True, True], recorded


def test_gunicorn_control_stop_check_fails_start(app, serving):
    run, recorded = call("entry-stop", "gunicorn", "control.yml", gunicorn_service_action="stop")
    assert run.rc == 0, run.output[-3000:]
    assert "gunicorn is stopped" in run.output
    assert recorded["states"] == [{"component": "gunicorn", "state": "stopped"}]
    assert "STOPPED" in app.run("supervisorctl status gunicorn").stdout
    run, recorded = call("entry-check-stopped", "gunicorn", "check.yml")
    assert run.rc != 0
    assert f"gunicorn on {APP} is unhealthy" in run.output
    run, recorded = call("entry-start", "gunicorn", "control.yml", gunicorn_service_action="start")
    assert run.rc == 0, run.output[-3000:]
    assert recorded["states"] == [{"component": "gunicorn", "state": "running"}]
    # start waits for /healthz: it answers at once.
    assert healthz()["release"] == live_release(app)


def test_gunicorn_control_reload_keeps_the_master(app, serving):
    run, recorded = call(
        "entry-reload", "gunicorn", "control.yml", gunicorn_service_action="reload"
    )
    assert run.rc == 0, run.output[-3000:]
    assert recorded["states"] == [{"component": "gunicorn", "state": "running"}]
    assert gunicorn_pid(app) == serving


def test_gunicorn_control_refuses_an_unknown_action(app, serving):
    run, _ = call("entry-bad-action", "gunicorn", "control.yml", gunicorn_service_action="bounce")
    assert run.rc != 0
    assert "start, stop, restart, reload, status" in run.output
    assert gunicorn_pid(app) == serving


def test_app_rollback_goes_back_and_forth(app, serving):
    live = live_release(app)
    previous = sh(app, f"readlink {APP_ROOT}/previous").rsplit("/", 1)[-1]
    run, _ = call("entry-rollback", "app", "rollback.yml")
    assert run.rc == 0, run.output[-3000:]
    assert live_release(app) == previous
    assert healthz()["release"] == previous
    assert sh(app, "grep ^OCPIZZA_RELEASE= /etc/ocpizza/app.env") == f"OCPIZZA_RELEASE={previous}"
    run, _ = call("entry-rollback-again", "app", "rollback.yml")
    assert run.rc == 0, run.output[-3000:]
    assert live_release(app) == live
    assert healthz()["release"] == live
