"""Issue 16, live: the site-down alert reaches the operators, and so does its resolution.

Prometheus on the monitoring host probes the site through the load balancer
(certificate validated against the lab CA); Alertmanager posts to a webhook
receiver this module runs on the control node, at the lab network's gateway
(the generated vault's ``vault_alertmanager_webhook_url``). Stopping gunicorn on every
app server (the operations document's ``supervisorctl stop gunicorn``) makes
nginx answer its 503 maintenance page: SiteDown must reach the receiver within the delay the
rendered configuration promises, ``status.yml`` must list it, and starting
gunicorn again must bring the resolution within its own promise. The module
starts gunicorn again whatever happens, and ends with the site answering.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from conftest import Platform, output

PROMETHEUS = "/etc/prometheus/prometheus.yml"
RULES = "/etc/prometheus/rules/ocpizza.rules.yml"
ALERTMANAGER = "/etc/prometheus/alertmanager.yml"
# Seconds allowed on top of each computed promise for what no setting bounds:
# a notification's HTTP round trip and a 2-core machine running the whole lab.
SLACK = 10


def seconds(duration: str) -> float:
    """A Prometheus duration (30s, 5m, 1h) in seconds."""
    m = re.fullmatch(r"([0-9]+)([smhd])", str(duration))
    assert m, f"not a duration: {duration!r}"
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@dataclass
class Receiver:
    """Alertmanager's webhook posts, as they arrive: (monotonic time, body)."""

    posts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def find(self, alertname: str, status: str, after: float) -> list[tuple[float, dict]]:
        """(arrival, alert) of each ``alertname`` alert with ``status`` that arrived after ``after``."""
        with self.lock:
            return [
                (at, alert)
                for at, body in self.posts
                if at > after
                for alert in body.get("alerts", [])
                if alert["labels"].get("alertname") == alertname and alert["status"] == status
            ]


@pytest.fixture(scope="module")
def receiver(platform: Platform) -> Iterator[Receiver]:
    """The webhook receiver, on the lab network's gateway (where mon1 posts)."""
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with got.lock:
                got.posts.append((time.monotonic(), json.loads(body or b"{}")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((platform.gateway, platform.webhook_port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def mon(platform: Platform) -> Any:
    return platform.host(platform.groups["monitoring"][0])


def query(mon: Any, promql: str) -> list[dict[str, Any]]:
    """The instant vector Prometheus (on mon1's loopback) returns for ``promql``."""
    url = "http://127.0.0.1:9090/api/v1/query?query=" + urllib.parse.quote(promql)
    answer = json.loads(mon.check_output("curl -sS --max-time 10 %s", url))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def wait_for(what: str, check: Callable[[], Any], timeout: float, step: float = 1) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(step)


def textfile_delay(platform: Platform, mon: Any) -> float:
    """How late a change of an app server's supervisor state may show in Prometheus:
    the writer's timer period, then the next scrape (both read from the hosts)."""
    app = platform.host(platform.groups["appservers"][0])
    timer = app.file("/etc/systemd/system/ocpizza-metrics-supervisor.timer").content_string
    period = re.search(r"^OnUnitActiveSec=(\S+)$", timer, re.M)
    assert period, timer
    prom = yaml.safe_load(mon.file(PROMETHEUS).content_string)
    return seconds(period.group(1)) + seconds(prom["global"]["scrape_interval"])


@dataclass(frozen=True)
class Promise:
    """What the rendered configuration promises, in seconds."""

    fire: float
    resolve: float
    detail: str


def promise(mon: Any) -> Promise:
    """The delays the monitoring host's rendered files promise (never a literal).

    Firing: the probe notices on its next scrape (probe interval), an
    evaluation marks the alert pending (evaluation interval), it fires once it
    has held for its ``for:`` (rounded up to an evaluation), and Alertmanager
    sends a new group after ``group_wait``. Resolution: the next probe, the
    next evaluation, and the group's next flush (``group_interval``).
    """
    prom = yaml.safe_load(mon.file(PROMETHEUS).content_string)
    rules = yaml.safe_load(mon.file(RULES).content_string)
    am = yaml.safe_load(mon.file(ALERTMANAGER).content_string)
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "blackbox")
    probe = seconds(job.get("scrape_interval", prom["global"]["scrape_interval"]))
    evaluation = seconds(prom["global"]["evaluation_interval"])
    rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "SiteDown")
    hold = -(-seconds(rule["for"]) // evaluation) * evaluation
    wait, interval = seconds(am["route"]["group_wait"]), seconds(am["route"]["group_interval"])
    return Promise(
        fire=probe + evaluation + hold + wait,
        resolve=probe + evaluation + interval,
        detail=(
            f"probe {probe:g} s, evaluation {evaluation:g} s, for {rule['for']}, "
            f"group_wait {wait:g} s, group_interval {interval:g} s"
        ),
    )


def gunicorn(platform: Platform, action: str) -> None:
    """``supervisorctl <action> gunicorn`` on every app server at once (operations document §5)."""
    hosts = platform.groups["appservers"]
    with ThreadPoolExecutor(len(hosts)) as pool:
        results = list(
            pool.map(lambda h: platform.host(h).run(f"supervisorctl {action} gunicorn"), hosts)
        )
    for host, res in zip(hosts, results, strict=True):
        assert res.rc == 0 or "already started" in res.stdout, (host, res.stdout, res.stderr)


def test_exporters_answer_the_monitoring_host_only(platform: Platform, mon: Any) -> None:
    # Every target Prometheus scrapes is up: the firewalls admit the monitoring host.
    expected = {f"node/{h}" for g in platform.groups.values() for h in g}
    expected |= {f"mysqld/{h}" for h in platform.groups["dbservers"]}
    expected |= {f"nginx/{h}" for h in platform.groups["webservers"]}

    def scraped() -> dict[str, str] | None:
        """The targets' health once each expected one has been scraped, else None."""
        targets = json.loads(
            mon.check_output(
                "curl -sS --max-time 10 http://127.0.0.1:9090/api/v1/targets?state=active"
            )
        )["data"]["activeTargets"]
        health = {f"{t['labels']['job']}/{t['labels']['instance']}": t["health"] for t in targets}
        return health if expected <= set(health) and "unknown" not in health.values() else None

    # Right after a converge restarted Prometheus, its target list is empty and
    # a new target is "unknown" until its first scrape: one scrape interval.
    prom = yaml.safe_load(mon.file(PROMETHEUS).content_string)
    health = wait_for(
        "every expected target scraped at least once",
        scraped,
        timeout=seconds(prom["global"]["scrape_interval"]) + SLACK,
    )
    assert {k: v for k, v in health.items() if v != "up"} == {}, health
    assert {r["value"][1] for r in query(mon, "mysql_up")} == {"1"}
    assert {r["value"][1] for r in query(mon, "nginx_up")} == {"1"}
    # The textfile metrics of the app servers (GunicornRestarting's data). An
    # earlier module may have just started gunicorn again on one of them: its
    # writer's timer and the next scrape bound how late that shows.
    apps = set(platform.groups["appservers"])
    wait_for(
        f"ocpizza_supervisor_program_up == 1 for gunicorn on {sorted(apps)}",
        lambda: (
            {
                r["metric"]["instance"]
                for r in query(mon, 'ocpizza_supervisor_program_up{program="gunicorn"} == 1')
            }
            == apps
        ),
        timeout=textfile_delay(platform, mon) + SLACK,
        step=5,
    )
    # Another host of the lab (a web server) is refused: the exporters of the
    # database host, the app servers' gunicorn, and Prometheus itself.
    web = platform.host(platform.groups["webservers"][0])
    db = platform.ip(platform.groups["dbservers"][0])
    mon_ip = platform.ip(platform.groups["monitoring"][0])
    for url in (f"http://{db}:9100/metrics", f"http://{db}:9104/metrics", f"http://{mon_ip}:9090/"):
        assert web.run(f"curl -sS --max-time 1 -o /dev/null {url}").rc != 0, url


def arrives(receiver: Receiver, status: str, since: float, promised: float, what: str) -> dict:
    """The first SiteDown notification with ``status`` after ``since``; it must come within
    ``promised`` seconds (+ SLACK). Prints the measured delay."""
    found = wait_for(
        f"SiteDown {status} at the webhook (promised {promised:g} s)",
        lambda: receiver.find("SiteDown", status, since),
        timeout=promised + SLACK + 30,
    )
    after = found[0][0] - since
    print(
        f"SiteDown {status} reached the webhook {after:.1f} s after {what} (promised {promised:g} s)"
    )
    assert after <= promised + SLACK, f"{after:.1f} s > {promised:g} s + {SLACK} s"
    return found[0][1]


def test_site_down_reaches_the_webhook_then_resolves(
    platform: Platform, receiver: Receiver, mon: Any
) -> None:
    promised = promise(mon)
    print(f"promised by the rendered configuration: {promised.detail}")
    # The starting point: both probes succeed (the site answers through the
    # load balancer, its certificate valid), nothing pending.
    wait_for(
        "both probes of the site succeeding",
        lambda: [r["value"][1] for r in query(mon, 'probe_success{job="blackbox"}')] == ["1", "1"],
        timeout=60,
    )
    assert not query(mon, 'ALERTS{alertname="SiteDown"}')
    stopped = time.monotonic()
    try:
        gunicorn(platform, "stop")
        assert platform.curl("/")[0] in ("502", "503", "504")
        alert = arrives(receiver, "firing", stopped, promised.fire, "gunicorn was stopped")
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["instance"].startswith("https://www.ocpizza.com/")
        assert alert["annotations"]["runbook"].startswith("docs/monitoring.md#sitedown")

        # status.yml lists it, from Alertmanager, beside gunicorn's stopped state.
        status = platform.playbook("status.yml", "-e", "component=gunicorn")
        assert status.returncode == 0, output(status)[-3000:]
        assert "SiteDown" in status.stdout and "critical" in status.stdout, output(status)[-3000:]
    finally:
        gunicorn(platform, "start")
    arrives(receiver, "resolved", time.monotonic(), promised.resolve, "gunicorn was started")
    # The site answers again, through the load balancer.
    wait_for("the site answering 200 again", lambda: platform.curl("/")[0] == "200", timeout=60)
