"""Issue 15, findings 14 and 5 on the HA lab: what the public sees of /healthz and /admin."""

from __future__ import annotations

import json

from conftest import Platform


def test_the_public_health_answer_is_bare_and_the_web_tier_gets_the_detail(platform: Platform):
    code, body = platform.curl("/healthz")
    assert code == "200"
    assert json.loads(body) == {"status": "ok"}  # no release, no database state
    for web in platform.groups["webservers"]:
        for app in platform.groups["appservers"]:
            # From a web server straight to gunicorn (as nginx and the checks reach it).
            detail = json.loads(
                platform.host(web).check_output(
                    f"curl -sS --max-time 10 http://{platform.ip(app)}:8000/healthz"
                )
            )
            assert detail["database"] is True and detail["release"], (web, app)
        # And through this web server's own nginx from its loopback: detail too.
        local = platform.host(web).check_output(
            "curl -sS -k --max-time 10 --resolve www.ocpizza.com:443:127.0.0.1 "
            "--haproxy-protocol https://www.ocpizza.com/healthz"
        )
        assert "release" in json.loads(local), web


def test_a_client_cannot_claim_the_detail(platform: Platform):
    code, body = platform.curl("/healthz", "-H", "X-OCPizza-Health-Detail: 1")
    assert code == "200" and json.loads(body) == {"status": "ok"}


def test_admin_login_answers_429_past_its_burst_while_the_site_answers(platform: Platform):
    # 10r/m, burst 5 (role nginx's defaults), counted by each web server: the load
    # balancer spreads the requests over them, so enough for every one to pass its
    # burst. The lab's control node is in the admin networks.
    tries = 8 * len(platform.groups["webservers"]) + 4
    codes = [platform.curl("/admin/login/")[0] for _ in range(tries)]
    assert "429" in codes and codes[0] != "429", codes
    assert platform.curl("/")[0] == "200"
