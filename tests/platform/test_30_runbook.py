"""The runbook (operations document §5, §6) on the production shape, as an operator runs it.

The rolling system update (§6.1, update.yml --tags system) has its own module:
test_65_system_update.py.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import Platform, output


def site_back(platform: Platform, timeout: int = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and platform.curl("/")[0] != "200":
        time.sleep(1)
    assert platform.curl("/")[0] == "200"


@pytest.mark.parametrize("component", ["nginx", "gunicorn", "mysql"])
def test_stop_start_cycle(platform: Platform, component: str) -> None:
    assert platform.curl("/")[0] == "200"
    res = platform.playbook("stop.yml", "-e", f"component={component}")
    assert res.returncode == 0, output(res)[-2000:]
    try:
        if component == "mysql":
            code, body = platform.curl("/healthz")
            # The public's answer is bare (no database state): issue 15, finding 14.
            assert code == "503" and json.loads(body) == {"status": "error"}
        else:
            # nginx down on every web server: the load balancer has no server (connection
            # closed, or its 503); gunicorn down on every app server: nginx's 502/503/504.
            expected = {"nginx": {"000", "503"}, "gunicorn": {"502", "503", "504"}}[component]
            assert platform.curl("/")[0] in expected
    finally:
        res = platform.playbook("start.yml", "-e", f"component={component}")
    assert res.returncode == 0, output(res)[-2000:]
    site_back(platform)


def test_verify_names_the_failed_check_when_gunicorn_is_stopped(platform: Platform) -> None:
    app1 = platform.groups["appservers"][0]
    res = platform.playbook("stop.yml", "-e", "component=gunicorn", "--limit", app1)
    assert res.returncode == 0, output(res)[-2000:]
    try:
        res = platform.playbook("verify.yml")
        text = output(res)
        assert res.returncode != 0
        failed = text.split("check(s) failed:", 1)[1]
        assert f"gunicorn under supervisor on {app1}" in failed
        # The table is printed before the failure, with every check in it.
        assert f"FAIL gunicorn under supervisor on {app1}" in text
        assert f"OK mysql up on {platform.groups['dbservers'][0]}" in text
        # One app server down: the site still answers from the other.
        assert platform.curl("/")[0] == "200"
    finally:
        res = platform.playbook("start.yml", "-e", "component=gunicorn")
    assert res.returncode == 0, output(res)[-2000:]
    site_back(platform)


@pytest.mark.parametrize("name", ["start.yml", "stop.yml", "restart.yml", "status.yml"])
def test_unknown_component_is_refused_before_anything(platform: Platform, name: str) -> None:
    res = platform.playbook(name, "-e", "component=redis")
    assert res.returncode != 0
    assert "Unknown component 'redis'. Valid components: mysql, gunicorn, nginx, all" in output(res)
    # Refused before any host was touched: no service was driven or read.
    assert not re.search(r": (mysql|gunicorn|nginx) is ", output(res))
    assert platform.curl("/")[0] == "200"


def listed_plays(text: str) -> list[tuple[str, list[str], str]]:
    """(play name, its task names, its tags) of an ``ansible-playbook --list-tasks`` output."""
    plays = []
    for chunk in text.split("\n  play #")[1:]:
        head, _, body = chunk.partition("\n")
        name, _, tags = head.split(": ", 1)[1].rpartition("\tTAGS: ")
        tasks = [
            line.strip().rpartition("\tTAGS: ")[0] for line in body.splitlines()[1:] if line.strip()
        ]
        plays.append((name, tasks, tags))
    return plays


def test_update_app_is_the_deploy(platform: Platform) -> None:
    """§6.2 ``update.yml --tags app`` runs deploy.yml's plays and tasks (the deploy itself
    runs under load in test_50_rolling.py)."""
    listed = {}
    for name, extra in (("update.yml", ("--tags", "app")), ("deploy.yml", ())):
        res = platform.playbook(name, *extra, "--list-tasks", timeout=300)
        assert res.returncode == 0, output(res)[-3000:]
        listed[name] = listed_plays(res.stdout)
    deploy = [(name, tasks) for name, tasks, _ in listed["deploy.yml"]]
    update_app = [(name, tasks) for name, tasks, tags in listed["update.yml"] if "app" in tags]
    assert deploy and update_app == deploy, listed
