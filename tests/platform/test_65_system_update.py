"""Operations document §6.1 on the HA lab: the rolling system update, under load.

``update.yml --tags system`` takes each app server, then each web server,
out of the load path, upgrades it, reboots it when required and allowed,
checks its services and puts it back, one host at a time; the database
server comes last, with a warning (no replica). A visitor's load runs while
the web and app tiers are updated and must see 0 failed requests, also with
a real reboot of one web and one app server (forced with
/var/run/reboot-required). A lab host is a podman container running
systemd: its reboot (systemctl reboot) ends the container, which podman
starts again with its restart policy; the container's start time tells
that it really rebooted.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import LOGS, ROOT, Platform, output
from loadclient import Load, under_load

# One app and one web server, both rebooted, then the database server: measured ~12 min
# on 2 cores shared with six other labs.
UPDATE_TIMEOUT = 1500
UPDATE_PLAY = "PLAY [Update the app servers, then the web servers"
DB_PLAY = "PLAY [Update the database servers last"
REBOOT_FLAG = "/var/run/reboot-required"


def started_at(platform: Platform, host: str) -> str:
    """When podman last started the host's container (changes when the host reboots)."""
    res = subprocess.run(
        ["podman", "inspect", "--format", "{{.State.StartedAt}}", platform.container(host)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return res.stdout.strip()


def update_with_load_on_web_and_app(
    platform: Platform, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Load, float]:
    """Run update.yml --tags system; the load runs until the database server's play starts.

    The database server has no replica: its update may interrupt the
    service, by design and with a warning. The load covers the web and app
    tiers, whose update must not lose a request. Returns the run (its output
    also in the logs), the load and the run's wall time.
    """
    cmd = [
        "ansible-playbook",
        "-i",
        str(platform.inventory),
        str(ROOT / "playbooks" / "update.yml"),
        "--tags",
        "system",
        *extra,
    ]
    lines: list[str] = []
    begin = time.monotonic()
    with under_load(platform, clients=4, max_seconds=UPDATE_TIMEOUT) as load:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=platform.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        watchdog = threading.Timer(UPDATE_TIMEOUT, proc.kill)
        watchdog.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(DB_PLAY):
                break
    lines.extend(proc.stdout)
    proc.wait()
    watchdog.cancel()
    wall = time.monotonic() - begin
    text = "".join(lines)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "platform-update-system.log").write_text(f"$ {' '.join(cmd)}\n{text}")
    return subprocess.CompletedProcess(cmd, proc.returncode, text, ""), load, wall


def put_back(platform: Platform, tmp_path: Path) -> None:
    """Put every app and web server back in the load path (the drains' ``in``)."""
    playbook = tmp_path / "put-back.yml"
    plays = [
        {
            "name": f"Put the {group} back",
            "hosts": group,
            "become": True,
            "tasks": [
                {
                    "name": "Put this host back",
                    "ansible.builtin.include_tasks": str(ROOT / "playbooks" / "tasks" / drain),
                    "vars": {"drain_state": "in"},
                }
            ],
        }
        for group, drain in (("appservers", "drain_app.yml"), ("webservers", "drain_web.yml"))
    ]
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    res = platform.playbook(str(playbook))
    assert res.returncode == 0, output(res)[-3000:]


def upgraded_at(text: str, host: str) -> int:
    """Where the run reports the host's upgrade ("<host>: 3 upgraded, ..." or "nothing to upgrade")."""
    found = re.search(rf"{re.escape(host)}: ([0-9]+ upgraded|nothing to upgrade)", text)
    assert found, f"no upgrade report for {host}"
    return found.start()


def site_back(platform: Platform, timeout: int = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and platform.curl("/")[0] != "200":
        time.sleep(1)
    assert platform.curl("/")[0] == "200"


# make test-full only this session: not green yet (4 read timeouts before any host was touched, on a machine loaded by seven labs); measured only on a machine loaded by seven labs (minutes per run); it moves into make test once its quiet-machine time is known to fit the budget
@pytest.mark.full
def test_update_system_with_reboots_under_load(platform: Platform, tmp_path: Path) -> None:
    """One web and one app server need a reboot: both reboot for real, 0 failed requests.

    Limited to those two and the database server to bound the wall time: the
    other app and web servers go through the same tasks of the same play,
    one host after the other.
    """
    web1, web2 = platform.groups["webservers"][:2]
    app1, app2 = platform.groups["appservers"][:2]
    db = platform.groups["dbservers"][0]
    before = {h: started_at(platform, h) for h in (web1, web2, app1, app2)}
    for host in (web1, app1):
        platform.host(host).check_output(f"touch {REBOOT_FLAG}")
    res = None
    try:
        # The services of a rebooted host start slowly on a busy machine.
        res, load, wall = update_with_load_on_web_and_app(
            platform,
            "-e",
            "system_update_allow_reboot=true",
            "-e",
            "system_update_check_timeout=180",
            "--limit",
            f"{app1},{web1},{db}",
        )
        text = output(res)
        print(f"update.yml --tags system, app1+web1 rebooted, db: {wall:.0f} s; {load.summary()}")
        assert res.returncode == 0, text[-4000:]
        assert load.report["failed"] == 0, load.failures_text()
        assert load.report["requests"] > 0

        # The hosts that needed it really rebooted (their container started
        # again), the others did not; the reboot cleared the flag.
        after = {h: started_at(platform, h) for h in before}
        for host in (web1, app1):
            assert after[host] != before[host], f"{host} did not reboot"
            assert re.search(
                rf"{re.escape(host)} rebooted \(a podman container\): back after", text
            )
            assert not platform.host(host).file(REBOOT_FLAG).exists
        for host in (web2, app2):
            assert after[host] == before[host], f"{host} rebooted without a need"

        # Each host checked with its own roles' checks, app servers first,
        # then web servers, the database server last, with its warning.
        for group, role in (
            ("dbservers", "mysql"),
            ("appservers", "gunicorn"),
            ("webservers", "nginx"),
        ):
            for host in {app1, web1, db} & set(platform.groups[group]):
                assert re.search(rf"included: {role} for [^ ]*{re.escape(host)}", text), (
                    role,
                    host,
                )
        order = [upgraded_at(text, h) for h in (app1, web1)]
        assert order == sorted(order), order
        assert text.index(DB_PLAY) > max(order)
        assert (
            f"{db}: WARNING: the only database server, without a replica: while its upgrade"
            " restarts MariaDB, or while it reboots, the site cannot reach its database" in text
        )
    finally:
        for host in (web1, app1):
            platform.host(host).run(f"rm -f {REBOOT_FLAG}")
        if res is None or res.returncode != 0:
            put_back(platform, tmp_path)

    # Every host back in the load path: each web and app server serves again.
    site_back(platform)
    marker = f"update-{uuid.uuid4().hex[:12]}"
    for i in range(24):
        assert platform.curl(f"/healthz?{marker}-{i}")[0] == "200"
    time.sleep(1)  # gunicorn's access log goes through supervisor's pipe
    for group, log in (
        ("webservers", "/var/log/nginx/access.log"),
        ("appservers", "/var/log/ocpizza/gunicorn.log"),
    ):
        counts = platform.served(group, log, marker)
        assert all(counts.values()), f"{group} after the update: requests per host {counts}"


def test_update_system_stops_at_a_host_whose_service_does_not_come_back(
    platform: Platform, tmp_path: Path
) -> None:
    app1 = platform.groups["appservers"][0]
    res = platform.playbook("stop.yml", "-e", "component=gunicorn", "--limit", app1)
    assert res.returncode == 0, output(res)[-2000:]
    try:
        res = platform.playbook(
            "update.yml", "--tags", "system", "-e", "system_update_check_timeout=10"
        )
        text = output(res)
        assert res.returncode != 0
        assert f"{app1}, 10 s after its update: gunicorn under supervisor on {app1}" in text
        assert f"{app1} failed its update (above) and stays out of the load path" in text
        # One host at a time: no host after the failed one is updated.
        # (The preflight reads every host; delegated tasks show as "[app1 -> web1]".)
        update = text.split(UPDATE_PLAY, 1)[1].split("PLAY RECAP", 1)[0]
        for web in platform.groups["webservers"]:
            assert f"[{web}]" not in update, f"{web} was updated after {app1} failed"
        assert DB_PLAY not in text
        # The failed app server is out of the load path: the other serves alone.
        assert platform.curl("/")[0] == "200"
    finally:
        res = platform.playbook("start.yml", "-e", "component=gunicorn")
        put_back(platform, tmp_path)
    assert res.returncode == 0, output(res)[-2000:]
    site_back(platform)
