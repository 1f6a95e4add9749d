"""The whole platform, end to end, as an operator runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PREFIX = os.environ.get("OCPIZZA_LAB_PREFIX", "ocpizza-stack")
NET = os.environ.get("OCPIZZA_LAB_SUBNET", "10.89.51.0/24").rsplit(".", 1)[0]
IP = {"db": f"{NET}.11", "app": f"{NET}.21", "web": f"{NET}.31", "forge": f"{NET}.41"}
HOST = {"db": "db1", "app": "app1", "web": "web1", "forge": "forge"}
HTTPS_PORT = os.environ.get("OCPIZZA_LAB_HTTPS_PORT", "18443")
SITE = f"https://www.ocpizza.com:{HTTPS_PORT}"
CA = ROOT / ".lab" / "ca.crt"


def playbook(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run one of the repository's playbooks against the scenario's hosts."""
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(ROOT / "playbooks" / name),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
        env=os.environ.copy(),
    )


def output(res: subprocess.CompletedProcess[str]) -> str:
    return " ".join((res.stdout + res.stderr).split())


def curl(path: str, *extra: str) -> tuple[str, str]:
    """GET through the published nginx port, certificate checked against the lab CA."""
    res = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "15",
            "--cacert",
            str(CA),
            "--resolve",
            f"www.ocpizza.com:{HTTPS_PORT}:127.0.0.1",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            *extra,
            SITE + path,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    body, _, code = res.stdout.rpartition("\n")
    return code or "000", body


def healthz() -> dict:
    code, body = curl("/healthz")
    assert code == "200", body
    return json.loads(body)


def can_connect(get_host, source: str, target_ip: str, port: int) -> bool:
    """A real TCP connection attempt from one lab host to another."""
    host = get_host(f"{PREFIX}-{HOST[source]}")
    res = host.run(
        f"timeout 4 bash -c 'exec 3<>/dev/tcp/{target_ip}/{port}' 2>/dev/null && echo open || echo closed"
    )
    # Anything but a clear answer (the container missing, say) fails the test.
    assert res.rc == 0 and res.stdout.strip() in {"open", "closed"}, res.stderr
    return res.stdout.strip() == "open"


def test_verify_playbook_passes():
    res = playbook("verify.yml")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "checks passed" in output(res)


def test_site_answers_with_a_valid_certificate():
    code, body = curl("/")
    assert code == "200"
    assert code == "200" and "Pizz" in body
    code, _ = curl("/admin/")
    assert code == "302"


@pytest.mark.parametrize(
    ("source", "target", "port", "expected"),
    [
        ("web", "app", 8000, True),  # gunicorn from web
        ("db", "app", 8000, False),  # ... and from nowhere else
        ("forge", "app", 8000, False),
        ("app", "db", 3306, True),  # MySQL from app
        ("web", "db", 3306, False),
        ("forge", "db", 3306, False),
        ("app", "web", 443, True),  # web is public on 80/443
        ("db", "web", 80, True),
        ("app", "web", 8000, False),  # nothing else on web
        ("web", "forge", 22, True),  # SSH everywhere
        ("web", "forge", 80, False),
        ("app", "forge", 9418, False),  # git daemon port: closed, git goes over SSH
    ],
)
def test_firewall_rules_with_real_connections(get_host, source, target, port, expected):
    assert can_connect(get_host, source, IP[target], port) is expected


def test_top_level_group_vars_in_effect(get_host):
    # gunicorn listens on ocpizza_gunicorn_port from the top-level group_vars/all,
    # and the db firewall names the app server from group_vars/dbservers.
    app = get_host(f"{PREFIX}-app1")
    assert app.socket(f"tcp://{IP['app']}:8000").is_listening
    ruleset = get_host(f"{PREFIX}-db1").check_output("nft list ruleset")
    assert f"ip saddr {IP['app']} tcp dport 3306 accept" in ruleset


@pytest.mark.parametrize("component", ["nginx", "gunicorn", "mysql"])
def test_stop_start_cycle(component):
    assert curl("/")[0] == "200"
    res = playbook("stop.yml", "-e", f"component={component}")
    assert res.returncode == 0, output(res)[-2000:]
    code, _ = curl("/")
    expected_down = {"nginx": {"000"}, "gunicorn": {"502", "503", "504"}, "mysql": {"500", "503"}}
    if component == "mysql":
        health = curl("/healthz")
        assert health[0] == "503" and json.loads(health[1])["database"] is False
    else:
        assert code in expected_down[component]
    res = playbook("start.yml", "-e", f"component={component}")
    assert res.returncode == 0, output(res)[-2000:]
    for _ in range(20):
        if curl("/")[0] == "200":
            break
        time.sleep(1)
    assert curl("/")[0] == "200"


def test_verify_names_the_failed_check_when_gunicorn_is_stopped():
    res = playbook("stop.yml", "-e", "component=gunicorn")
    assert res.returncode == 0, output(res)[-2000:]
    try:
        res = playbook("verify.yml")
        text = output(res)
        assert res.returncode != 0
        assert "check(s) failed:" in text
        failed = text.split("check(s) failed:", 1)[1]
        assert f"gunicorn under supervisor on {PREFIX}-app1" in failed
        # The table is printed before the failure, with every check in it.
        assert f"FAIL gunicorn under supervisor on {PREFIX}-app1" in text
        assert f"OK mysql up on {PREFIX}-db1" in text
    finally:
        res = playbook("start.yml", "-e", "component=gunicorn")
    assert res.returncode == 0, output(res)[-2000:]
    assert curl("/")[0] == "200"


@pytest.mark.parametrize("name", ["start.yml", "stop.yml", "restart.yml", "status.yml"])
def test_unknown_component_is_refused_before_anything(name):
    res = playbook(name, "-e", "component=redis")
    assert res.returncode != 0
    assert "Unknown component 'redis'. Valid components: mysql, gunicorn, nginx, all" in output(res)
    # Refused before any host was touched: no service was driven or read.
    assert not re.search(r": (mysql|gunicorn|nginx) is ", output(res))
    assert curl("/")[0] == "200"


def test_status_prints_each_hosts_services():
    res = playbook("status.yml")
    assert res.returncode == 0
    text = output(res)
    for host, component, state in (
        ("db1", "mysql", "active"),
        ("app1", "gunicorn", "running"),
        ("web1", "nginx", "active"),
    ):
        assert f"{PREFIX}-{host} {component} {state}" in text


def test_update_system_checks_each_host_with_its_roles_checks():
    res = playbook("update.yml", "--tags", "system")
    assert res.returncode == 0, output(res)[-3000:]
    text = output(res)
    for host, role in (("db1", "mysql"), ("app1", "gunicorn"), ("web1", "nginx")):
        assert f"included: {role} for {PREFIX}-{host}" in text
    assert curl("/")[0] == "200"


def test_update_system_stops_at_a_host_whose_service_does_not_come_back():
    res = playbook("stop.yml", "-e", "component=gunicorn")
    assert res.returncode == 0, output(res)[-2000:]
    try:
        res = playbook("update.yml", "--tags", "system", "-e", "system_update_check_timeout=10")
        text = output(res)
        assert res.returncode != 0
        assert (
            f"{PREFIX}-app1, 10 s after its update: gunicorn under supervisor on {PREFIX}-app1"
            in text
        )
        # One host at a time: the web server, after the app server, is not touched.
        assert f"{PREFIX}-web1" not in text.split("PLAY RECAP", 1)[1]
    finally:
        res = playbook("start.yml", "-e", "component=gunicorn")
    assert res.returncode == 0, output(res)[-2000:]
    assert curl("/")[0] == "200"


def test_new_commit_on_production_is_deployed_by_update_app(get_host):
    before = healthz()["release"]
    forge = get_host(f"{PREFIX}-forge")
    marker = f"stack-test-{int(time.time())}"
    git = "git -c user.name=t -c user.email=t@t"
    forge.check_output(
        # root works in repositories the git user owns, as an admin would.
        "git config --global --get-all safe.directory | grep -qx '[*]'"
        " || git config --global --add safe.directory '*'"
    )
    forge.check_output(
        f"set -e; rm -rf /tmp/w && {git} clone -q -b production /srv/git/ocpizza.git /tmp/w"
        f" && cd /tmp/w && echo '{marker}' > DEPLOY_MARKER && {git} add DEPLOY_MARKER"
        f" && {git} commit -qm 'stack test commit' && {git} push -q origin production"
        " && chown -R git:git /srv/git"
    )
    res = playbook("update.yml", "--tags", "app")
    assert res.returncode == 0, output(res)[-3000:]
    after = healthz()["release"]
    assert after != before
    app = get_host(f"{PREFIX}-app1")
    assert app.file("/srv/ocpizza/current/DEPLOY_MARKER").content_string.strip() == marker
