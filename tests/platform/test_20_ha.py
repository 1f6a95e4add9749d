"""The production shape: a load balancer, two web servers, two app servers.

The client's real address reaches nginx (PROXY protocol) and the app
(X-Forwarded-For); every web and app server serves; one of each may die.
"""

from __future__ import annotations

import subprocess
import time
import uuid

from conftest import Platform

LOG_DIR = "/var/log/ocpizza"


def through_lb_from(platform: Platform, source: str, path: str) -> str:
    """GET https://www.ocpizza.com<path> from a lab host, through the load balancer's address."""
    lb = platform.ip(platform.groups["loadbalancers"][0])
    res = platform.host(source).run(
        "curl -sk -o /dev/null -w '%{http_code}' --max-time 10"
        f" --resolve www.ocpizza.com:443:{lb} 'https://www.ocpizza.com{path}'"
    )
    return res.stdout.strip()


def grep_logs(platform: Platform, group: str, path: str, marker: str) -> dict[str, list[str]]:
    """The lines holding ``marker`` in ``path`` on each host of a group."""
    found = {}
    for host in platform.groups[group]:
        res = platform.host(host).run(f"grep -h -- '{marker}' {path} || true")
        found[host] = [line for line in res.stdout.splitlines() if line.strip()]
    return found


def test_the_client_address_reaches_nginx_and_the_app(platform: Platform) -> None:
    client = platform.groups["forge"][0]  # any host that is not on the request's path
    marker = f"probe-{uuid.uuid4().hex[:12]}"
    assert through_lb_from(platform, client, f"/healthz?{marker}") == "200"
    time.sleep(1)  # gunicorn's access log goes through supervisor's pipe
    nginx = [
        line
        for lines in grep_logs(platform, "webservers", "/var/log/nginx/access.log", marker).values()
        for line in lines
    ]
    assert len(nginx) == 1, nginx
    assert nginx[0].split()[0] == platform.ip(client), (
        f"nginx logged {nginx[0]!r}, not the client's address"
    )
    app = [
        line
        for lines in grep_logs(platform, "appservers", f"{LOG_DIR}/gunicorn.log", marker).values()
        for line in lines
    ]
    assert len(app) == 1, app
    # gunicorn's access log ends with the X-Forwarded-For the app received.
    assert app[0].rstrip().endswith(f'"{platform.ip(client)}"'), app[0]


def test_every_web_and_app_server_serves(platform: Platform) -> None:
    marker = f"spread-{uuid.uuid4().hex[:12]}"
    for i in range(24):
        code, _ = platform.curl(f"/healthz?{marker}-{i}")
        assert code == "200"
    time.sleep(1)
    for group, path in (
        ("webservers", "/var/log/nginx/access.log"),
        ("appservers", f"{LOG_DIR}/gunicorn.log"),
    ):
        served = {h: len(lines) for h, lines in grep_logs(platform, group, path, marker).items()}
        assert all(served.values()), f"{group}: requests per host {served}"


def podman(*args: str) -> None:
    subprocess.run(["podman", *args], check=True, capture_output=True, timeout=120)


def answers_while(platform: Platform, seconds: int) -> list[str]:
    """Status codes of requests sent one after the other for ``seconds``."""
    codes = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        codes.append(platform.curl("/healthz")[0])
        time.sleep(0.2)
    return codes


def wait_for(platform: Platform, host: str, command: str, timeout: int = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if platform.host(host).run(command).rc == 0:
            return
        time.sleep(1)
    raise AssertionError(f"{host}: '{command}' did not succeed within {timeout} s")


def verify_after_restart(platform: Platform, host: str) -> None:
    """verify.yml passes once the restarted host's sshd takes connections again.

    The container's restart kills the SSH master connection Ansible keeps
    (ControlPersist): the first run may find the host unreachable while sshd
    starts. Only an unreachable host is retried; a failed check is not.
    """
    wait_for(platform, host, "systemctl is-active ssh")
    for _ in range(3):
        res = platform.playbook("verify.yml")
        if res.returncode == 0 or "unreachable=1" not in res.stdout:
            break
        time.sleep(3)
    assert res.returncode == 0, res.stdout[-3000:]


def test_the_site_answers_with_web1_down(platform: Platform) -> None:
    web1 = platform.groups["webservers"][0]
    podman("stop", "--time", "5", platform.container(web1))
    try:
        time.sleep(6)  # the load balancer's health checks mark it down
        codes = answers_while(platform, 10)
        assert codes and all(c == "200" for c in codes), codes
    finally:
        podman("start", platform.container(web1))
        wait_for(platform, web1, "systemctl is-active nginx")
        # Back in the pool once the load balancer's health check says so (rise).
        wait_for(
            platform,
            platform.groups["loadbalancers"][0],
            f"echo 'show stat' | socat stdio /run/haproxy/admin.sock | cut -d, -f1,2,18"
            f" | grep -qx 'webservers_https,{platform.ip(web1)},UP'",
        )
    verify_after_restart(platform, web1)


def test_the_site_answers_with_app1_down(platform: Platform) -> None:
    app1 = platform.groups["appservers"][0]
    podman("stop", "--time", "5", platform.container(app1))
    try:
        codes = answers_while(platform, 10)
        assert codes and all(c == "200" for c in codes), codes
    finally:
        podman("start", platform.container(app1))
        wait_for(platform, app1, "supervisorctl status gunicorn | grep -q RUNNING")
    verify_after_restart(platform, app1)


def test_the_load_balancers_health_check_is_answered_over_http_with_the_proxy_line(
    platform: Platform,
) -> None:
    # DigitalOcean's health check: plain HTTP on 80, the PROXY line, the droplet's
    # address as Host. The health path answers; anything else is still turned away.
    lb = platform.host(platform.groups["loadbalancers"][0])
    for web in platform.groups["webservers"]:
        base = f"curl -s --haproxy-protocol --max-time 10 -o /dev/null -w '%{{http_code}}' http://{platform.ip(web)}"
        assert lb.run(f"{base}/healthz").stdout.strip() == "200", web
        assert lb.run(f"{base}/").stdout.strip() == "000", web  # 444: closed without an answer
