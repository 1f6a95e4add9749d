"""Issue 16 in production: the monitoring droplet and what the cloud firewalls let it reach.

The monitoring group gets its droplet like the other groups (its size and
monthly cost in the plan, from group_vars/monitoring/digitalocean.yml). The
exporters' ports and the app servers' gunicorn (the app's metrics) admit the
monitoring droplets only, through the same firewall policy that role firewall
applies on the hosts (``from_group: monitoring``); the monitoring droplet
itself admits SSH alone: Prometheus and Alertmanager are reached through an
SSH tunnel. The module runs in-process against the local fake API.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fake_digitalocean import FakeConfig
from fake_digitalocean.testing import REPO, TEST_PUBLIC_KEY, run_module_in_process, serving
from test_digitalocean_firewall_policy import ADMIN, group_vars

MONITORING_TAG = "ocpizza-staging-monitoring"


def contract() -> dict[str, Any]:
    return yaml.safe_load((REPO / "group_vars/all/platform_contract.yml").read_text())


def do_groups() -> list[str]:
    return yaml.safe_load((REPO / "group_vars/all/digitalocean.yml").read_text())[
        "ocpizza_do_groups"
    ]


def shipped_group(group: str) -> dict[str, Any]:
    """The ``groups`` entry provision.yml builds for a group, from the shipped files."""
    droplets = group_vars(group, "digitalocean")
    return {
        "name": group,
        "hostname_prefix": droplets["ocpizza_do_hostname_prefix"],
        "size": droplets["ocpizza_do_size"],
        "count": droplets.get("ocpizza_do_count", 1),
        "firewall_allowed": group_vars(group, "firewall")["firewall_allowed"],
    }


# The exporters' ports and the app's metrics (gunicorn): the contract's names
# (helper mon2 adds them; these are their values until then).
SCRAPED = {
    "node": contract().get("ocpizza_node_exporter_port", 9100),
    "mysqld": contract().get("ocpizza_mysqld_exporter_port", 9104),
    "nginx": contract().get("ocpizza_nginx_exporter_port", 9113),
    "app": contract()["ocpizza_gunicorn_port"],
}
# Prometheus and Alertmanager (role monitoring's defaults): never opened.
NEVER_OPEN = {9090, 9093}


def scrape(port: int) -> dict[str, Any]:
    return {"name": f"scrape {port}", "port": port, "from_group": "monitoring"}


# The policies of issue 16: what each group's firewall.yml admits from the
# monitoring hosts, on top of what it admits already.
POLICY = {
    "dbservers": [
        {"name": "mysql from app", "port": 3306, "from_group": "appservers"},
        scrape(SCRAPED["node"]),
        scrape(SCRAPED["mysqld"]),
    ],
    "appservers": [
        {"name": "gunicorn from web", "port": SCRAPED["app"], "from_group": "webservers"},
        scrape(SCRAPED["node"]),
        scrape(SCRAPED["app"]),
    ],
    "webservers": [
        {"name": "https", "port": 443},
        scrape(SCRAPED["node"]),
        scrape(SCRAPED["nginx"]),
    ],
    "monitoring": [],
}


@pytest.fixture
def fake(monkeypatch):
    with serving(monkeypatch, FakeConfig(active_after_seconds=0.05)) as server:
        yield server


def run_module(capsys, groups: list[dict[str, Any]], check_mode: bool = False) -> dict[str, Any]:
    params = {
        "environment": "staging",
        "region": "fra1",
        "groups": groups,
        "ssh_keys": [{"name": "k", "public_key": TEST_PUBLIC_KEY}],
        "ssh_sources": ADMIN,
        "poll_interval": 0.05,
        "_ansible_check_mode": check_mode,
    }
    result = run_module_in_process(capsys, params)[0]
    assert not result.get("failed"), result
    return result


def test_the_monitoring_group_gets_a_small_droplet_whose_cost_is_in_the_plan(fake, capsys):
    assert do_groups()[-1] == "monitoring"
    result = run_module(capsys, [shipped_group(g) for g in do_groups()], check_mode=True)
    lines = " ".join(result["plan_lines"])
    assert (
        "create droplet ocpizza-staging-mon1 (monitoring, s-1vcpu-2gb, ubuntu-24-04-x64, fra1):"
        " $12.00/month"
    ) in lines
    # db $48 + app $24 + web $24 + monitoring $12.
    assert result["monthly_cost"] == 108.0
    assert "ocpizza-staging-mon1" in result["created"]
    assert fake.writes() == []


def test_the_scrapes_are_admitted_from_the_monitoring_droplets_only(fake, capsys):
    groups = [{**shipped_group(g), "firewall_allowed": POLICY[g]} for g in do_groups()]
    run_module(capsys, groups)
    firewalls = {f["name"].removeprefix("ocpizza-staging-"): f for f in fake.firewalls.values()}
    assert set(firewalls) == set(do_groups())

    def sources(group: str, port: int) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in r["sources"].items() if v}
            for r in firewalls[group]["inbound_rules"]
            if r["ports"] == str(port)
        ]

    monitoring_only = {"tags": [MONITORING_TAG]}
    for group in ("dbservers", "appservers", "webservers"):
        assert sources(group, SCRAPED["node"]) == [monitoring_only], group
    assert sources("dbservers", SCRAPED["mysqld"]) == [monitoring_only]
    assert sources("webservers", SCRAPED["nginx"]) == [monitoring_only]
    # gunicorn: the web servers (the site) and the monitoring droplets (the app's metrics).
    assert sorted(map(str, sources("appservers", SCRAPED["app"]))) == sorted(
        map(str, [{"tags": ["ocpizza-staging-webservers"]}, monitoring_only])
    )
    # An exporter is not opened where it does not run.
    assert sources("appservers", SCRAPED["mysqld"]) == sources("dbservers", SCRAPED["nginx"]) == []
    # The monitoring droplet: SSH from the admin networks, nothing else.
    assert [
        (r["ports"], r["sources"]["addresses"]) for r in firewalls["monitoring"]["inbound_rules"]
    ] == [("22", ADMIN)]
    mon1 = next(d for d in fake.droplets.values() if d["name"] == "ocpizza-staging-mon1")
    assert MONITORING_TAG in mon1["tags"]


def test_the_shipped_policies_never_open_prometheus_or_alertmanager_and_scrapes_only_to_monitoring():
    known = do_groups()
    exporter_ports = {SCRAPED["node"], SCRAPED["mysqld"], SCRAPED["nginx"]}
    for group in known:
        allowed = group_vars(group, "firewall")["firewall_allowed"]
        for entry in allowed:
            port = int(entry["port"])
            assert port not in NEVER_OPEN, (group, entry)
            if port in exporter_ports:
                assert entry.get("from_group") == "monitoring", (group, entry)
            # A from_group the cloud firewall can resolve: a group that gets droplets.
            if entry.get("from_group"):
                assert entry["from_group"] in known, (group, entry)
    assert group_vars("monitoring", "firewall")["firewall_allowed"] == []
