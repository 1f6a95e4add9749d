"""Issue 15 on the HA lab: what the public sees of /healthz and /admin (findings 14
and 5), and where each host may connect to (finding 17: outbound filtering)."""

from __future__ import annotations

import json
import re
import socket
import threading

import pytest
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


# --- Finding 17: outbound traffic, each tier to what it needs only -----------------
# Every probe is a TCP connection opened from a host (bash's /dev/tcp, bounded by
# `timeout`); the output chain's policy drops what no entry of the host's policy
# allows, and its named counter (egress_dropped) counts each refused packet.
COUNTER = "nft list counter inet filter egress_dropped"


def dropped(platform: Platform, name: str) -> int:
    """Outbound packets the host's firewall has refused so far."""
    out = platform.host(name).check_output(COUNTER)
    found = re.search(r"packets (\d+)", out)
    assert found, f"{name}: no egress_dropped counter\n{out}"
    return int(found.group(1))


def connects(platform: Platform, name: str, address: str, port: int) -> bool:
    """Whether the host opens a TCP connection to address:port within 5 seconds."""
    res = platform.host(name).run(f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port}' 2>&1")
    return res.rc == 0


@pytest.fixture(scope="module")
def probed() -> dict[str, int]:
    """How many refused probes each host made (checked against its counter at the end)."""
    return {}


def test_an_app_server_reaches_the_database_and_a_web_server_does_not(
    platform: Platform, probed: dict[str, int]
):
    db = platform.groups["dbservers"][0]
    for app in platform.groups["appservers"]:
        assert connects(platform, app, platform.ip(db), 3306), f"{app} cannot reach MySQL"
    for web in platform.groups["webservers"]:
        before = dropped(platform, web)
        assert not connects(platform, web, platform.ip(db), 3306), f"{web} reached MySQL"
        # Refused on the way out, by the web server's own firewall (the database's
        # inbound policy would refuse it too, but never counts here).
        assert dropped(platform, web) > before, f"{web}: the probe was not counted"
        probed[web] = probed.get(web, 0) + 1


@pytest.fixture
def listener(platform: Platform):
    """A TCP listener of the control node on the lab's gateway, at a port no policy lists."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((platform.gateway, 0))
    server.listen(16)
    server.settimeout(0.5)
    peers: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except OSError:
                continue
            peers.append(peer[0])
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], peers
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_no_host_reaches_an_unlisted_port_of_the_control_node(
    platform: Platform, listener, probed: dict[str, int]
):
    port, peers = listener
    # The listener answers (the control node itself connects): a refusal below is the hosts'.
    with socket.create_connection((platform.gateway, port), timeout=5):
        pass
    reached = []
    for name in platform.containers:
        before = dropped(platform, name)
        if connects(platform, name, platform.gateway, port):
            reached.append(name)
            continue
        assert dropped(platform, name) > before, f"{name}: the probe was not counted"
        probed[name] = probed.get(name, 0) + 1
    assert reached == [], f"hosts that reached {platform.gateway}:{port}: {reached}"
    assert set(peers) <= {platform.gateway}, peers


def test_each_host_counted_the_probes_it_refused(platform: Platform, probed: dict[str, int]):
    counts = {name: dropped(platform, name) for name in platform.containers}
    print("egress_dropped per host:", counts)
    assert probed, "no probe ran"
    for name, probes in probed.items():
        assert counts[name] >= probes, (name, counts[name], probes)
