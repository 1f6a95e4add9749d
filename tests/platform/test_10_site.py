"""The production inventory, converged on the HA lab, serves the site."""

from __future__ import annotations

import pytest
from conftest import Platform, output


def test_verify_playbook_passes(platform: Platform) -> None:
    res = platform.playbook("verify.yml", log="platform-verify.log")
    assert res.returncode == 0, output(res)[-3000:]
    assert "checks passed" in output(res)
    # The load balancer's own check is in the table (each web server up behind it).
    assert platform.groups["loadbalancers"][0] in output(res)


def test_site_answers_through_the_load_balancer_with_a_valid_certificate(
    platform: Platform,
) -> None:
    code, body = platform.curl("/")
    assert code == "200" and "Pizz" in body
    assert platform.curl("/admin/")[0] == "302"


def can_connect(platform: Platform, source: str, target: str, port: int) -> bool:
    """A real TCP connection attempt from one lab host to another."""
    res = platform.host(source).run(
        f"timeout 4 bash -c 'exec 3<>/dev/tcp/{platform.ip(target)}/{port}' 2>/dev/null"
        " && echo open || echo closed"
    )
    # Anything but a clear answer (the container missing, say) fails the test.
    assert res.rc == 0 and res.stdout.strip() in {"open", "closed"}, res.stderr
    return res.stdout.strip() == "open"


# (source group, index, target group, index, port, expected)
FLOWS = [
    ("webservers", 0, "appservers", 0, 8000, True),  # gunicorn from every web server
    ("webservers", 1, "appservers", 1, 8000, True),
    ("dbservers", 0, "appservers", 0, 8000, False),  # ... and from nowhere else
    ("loadbalancers", 0, "appservers", 0, 8000, False),
    ("appservers", 0, "dbservers", 0, 3306, True),  # MySQL from every app server
    ("appservers", 1, "dbservers", 0, 3306, True),
    ("webservers", 0, "dbservers", 0, 3306, False),
    ("forge", 0, "dbservers", 0, 3306, False),
    ("loadbalancers", 0, "webservers", 0, 443, True),  # web: 80/443 from the load balancer
    ("loadbalancers", 0, "webservers", 1, 80, True),
    ("appservers", 0, "webservers", 0, 443, False),  # ... only
    ("dbservers", 0, "webservers", 1, 80, False),
    ("appservers", 0, "webservers", 0, 8000, False),  # nothing else on web
    # SSH from the admin network (the lab's), from a host whose own policy lets SSH
    # out (the app servers fetch the app over SSH); a web server's does not (finding 17).
    ("appservers", 0, "forge", 0, 22, True),
    ("webservers", 0, "forge", 0, 22, False),
    ("webservers", 0, "forge", 0, 80, False),
    ("appservers", 0, "forge", 0, 9418, False),  # git daemon port: closed, git goes over SSH
]


@pytest.mark.parametrize(("src", "si", "dst", "di", "port", "expected"), FLOWS)
def test_firewall_rules_with_real_connections(
    platform: Platform, src, si, dst, di, port, expected
) -> None:
    source, target = platform.groups[src][si], platform.groups[dst][di]
    assert can_connect(platform, source, target, port) is expected


def test_project_group_vars_in_effect(platform: Platform) -> None:
    # gunicorn listens on ocpizza_gunicorn_port from the top-level group_vars/all,
    # and the db firewall names every app server from group_vars/dbservers.
    for app in platform.groups["appservers"]:
        assert platform.host(app).socket(f"tcp://{platform.ip(app)}:8000").is_listening
    ruleset = platform.host(platform.groups["dbservers"][0]).check_output("nft list ruleset")
    for app in platform.groups["appservers"]:
        assert platform.ip(app) in ruleset


def test_status_prints_each_hosts_services(platform: Platform) -> None:
    res = platform.playbook("status.yml")
    assert res.returncode == 0, output(res)[-2000:]
    text = output(res)
    for group, component, state in (
        ("dbservers", "mysql", "active"),
        ("appservers", "gunicorn", "running"),
        ("webservers", "nginx", "active"),
    ):
        for host in platform.groups[group]:
            assert f"{host} {component} {state}" in text
