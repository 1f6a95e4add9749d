"""Finding 17 in the cloud: each group's cloud firewall lets out what its host firewall lets out.

The outbound policy of role firewall (firewall_egress_common in
group_vars/all/firewall.yml, each group's firewall_egress, firewall_egress_extra)
reaches the module as groups[].firewall_egress and becomes the outbound rules
of the group's DigitalOcean cloud firewall: to_group by selector tag (all:
every group's), destinations by address (any: 0.0.0.0/0 and ::/0), ICMP to
anywhere; no policy (firewall_egress_enabled false) keeps all outbound open.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fake_digitalocean import FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import (
    REPO,
    TEST_PUBLIC_KEY,
    group_params,
    module_params,
    run_module_in_process,
    serving,
)
from jinja2 import StrictUndefined
from jinja2.nativetypes import NativeEnvironment
from ocpizza_digitalocean.errors import SpecError
from ocpizza_digitalocean.firewall import (
    ALLOW_ALL_OUTBOUND,
    ANYWHERE,
    ICMP_OUTBOUND,
    EgressRule,
    desired_firewall,
    egress_rule_from_policy,
    egress_rules_from_policy,
    firewall_differences,
)
from ocpizza_digitalocean.module_args import build_spec
from ocpizza_digitalocean.reconciler import EnvironmentReconciler

GROUPS = ("dbservers", "appservers", "webservers", "monitoring")
ADMIN = ["203.0.113.0/24"]
ANY = list(ANYWHERE)
TAG = "ocpizza-staging-{}".format


def _render(value: Any, context: dict[str, Any]) -> Any:
    """A YAML value with its Jinja rendered to native values (lists stay lists)."""
    if isinstance(value, str) and "{{" in value:
        template = NativeEnvironment(undefined=StrictUndefined).from_string(value)
        return _render(template.render(**context), context)
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    return value


def shipped_egress(group: str) -> list[dict[str, Any]]:
    """What provision.yml sends for a group of the staging inventory: the shipped files'
    firewall_egress_common + firewall_egress, rendered with the platform contract.

    Two destinations come from the hosts' inventory and facts, which the control node
    does not have while it provisions: the DNS resolvers (role digitalocean's
    digitalocean_egress_dns_servers, any) and the site's load balancer (staging has
    no loadbalancers group: any, as group_vars/all/firewall.yml says).
    """
    context = yaml.safe_load((REPO / "group_vars/all/platform_contract.yml").read_text())
    common = yaml.safe_load((REPO / "group_vars/all/firewall.yml").read_text())
    defaults = yaml.safe_load((REPO / "roles/digitalocean/defaults/main.yml").read_text())
    context |= {k: v for k, v in common.items() if k != "firewall_egress_common"}
    context |= {
        "firewall_egress_dns_servers": defaults["digitalocean_egress_dns_servers"],
        "firewall_egress_site_destinations": ["any"],
    }
    own = yaml.safe_load((REPO / f"group_vars/{group}/firewall.yml").read_text())
    entries = common["firewall_egress_common"] + own["firewall_egress"]
    return _render(entries, context)


def shipped_allowed(group: str) -> list[dict[str, Any]]:
    """The group's inbound policy (firewall_allowed), rendered with the platform contract."""
    context = yaml.safe_load((REPO / "group_vars/all/platform_contract.yml").read_text())
    own = yaml.safe_load((REPO / f"group_vars/{group}/firewall.yml").read_text())
    return _render(own["firewall_allowed"], context)


def outbound(body: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """(protocol, ports, addresses, tags) of a firewall body's outbound rules."""
    return [
        (
            r["protocol"],
            r["ports"],
            tuple(r["destinations"].get("addresses", [])),
            tuple(r["destinations"].get("tags", [])),
        )
        for r in body["outbound_rules"]
    ]


def shipped_spec(**egress_off: bool) -> Any:
    groups = [
        group_params(
            g,
            firewall_allowed=shipped_allowed(g),
            firewall_egress=None if egress_off.get(g) else shipped_egress(g),
        )
        for g in GROUPS
    ]
    spec = build_spec(module_params(ssh_sources=ADMIN, groups=groups))
    spec.validate()
    return spec


# What every droplet may reach: DNS (UDP and TCP), NTP, the apt mirrors over HTTP and HTTPS.
COMMON = [
    ("udp", "53", tuple(ANY), ()),
    ("tcp", "53", tuple(ANY), ()),
    ("udp", "123", tuple(ANY), ()),
    ("tcp", "80", tuple(ANY), ()),
    ("tcp", "443", tuple(ANY), ()),
]
ICMP = ("icmp", "", tuple(ANY), ())


def test_each_shipped_group_gets_its_host_policy_as_outbound_cloud_rules():
    spec = shipped_spec()
    bodies = {g.name: desired_firewall(spec, g) for g in spec.groups}
    # Several flows share 443 to any (apt, object storage, check-ins; PyPI, Sentry;
    # Let's Encrypt; the blackbox probe, the webhook): one rule each time.
    assert outbound(bodies["dbservers"]) == [*COMMON, ("tcp", "22", tuple(ANY), ()), ICMP]
    assert outbound(bodies["appservers"]) == [
        *COMMON,
        ("tcp", "3306", (), (TAG("dbservers"),)),
        ("tcp", "22", tuple(ANY), ()),
        ICMP,
    ]
    assert outbound(bodies["webservers"]) == [
        *COMMON,
        ("tcp", "8000", (), (TAG("appservers"),)),
        ICMP,
    ]
    assert outbound(bodies["monitoring"]) == [
        *COMMON,
        # to_group: all, the node exporter on every group's droplets.
        ("tcp", "9100", (), tuple(TAG(g) for g in GROUPS)),
        ("tcp", "9104", (), (TAG("dbservers"),)),
        ("tcp", "9113", (), (TAG("webservers"),)),
        ("tcp", "8000", (), (TAG("appservers"),)),
        ("tcp", "587", tuple(ANY), ()),
        ICMP,
    ]
    # Only the app servers may reach MySQL (as in nftables).
    for group, body in bodies.items():
        ports = {(r[1], r[3]) for r in outbound(body)}
        assert (("3306", (TAG("dbservers"),)) in ports) == (group == "appservers"), group


def test_the_cloud_dns_rules_go_anywhere_whatever_the_control_nodes_resolvers():
    # firewall_egress_dns_servers comes from each host's facts; the role replaces it
    # with digitalocean_egress_dns_servers (any), since the droplets use DigitalOcean's.
    for entry in shipped_egress("dbservers")[:2]:
        assert entry["port"] == 53 and entry["destinations"] == ["any"]


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        (
            {"name": "mysql", "port": 3306, "to_group": "dbservers"},
            EgressRule("tcp", "3306", (), ("dbservers",)),
        ),
        (
            {"name": "node exporter", "port": 9100, "to_group": "all"},
            EgressRule("tcp", "9100", (), ("all",)),
        ),
        (
            {"name": "https", "port": 443, "destinations": ["any"]},
            EgressRule("tcp", "443", ANYWHERE),
        ),
        (
            {
                "name": "dns",
                "port": "53",
                "proto": "udp",
                "destinations": ["67.207.67.2", "67.207.67.3"],
            },
            EgressRule("udp", "53", ("67.207.67.2", "67.207.67.3")),
        ),
        # An address keeps its family, as in nftables: 0.0.0.0/0 is IPv4 only.
        (
            {"name": "v4", "port": 80, "destinations": ["0.0.0.0/0"]},
            EgressRule("tcp", "80", ("0.0.0.0/0",)),
        ),
        (
            {"name": "proxy", "port": 3128, "destinations": "10.110.0.5"},
            EgressRule("tcp", "3128", ("10.110.0.5",)),
        ),
    ],
)
def test_each_kind_of_entry_becomes_its_outbound_rule(entry, rule):
    assert egress_rule_from_policy(entry, "t") == rule


def test_an_empty_destination_list_opens_nothing_as_in_nftables():
    assert egress_rules_from_policy([{"name": "proxied", "port": 443, "destinations": []}]) == []


def test_to_group_all_is_every_group_of_the_environment_once():
    groups = [
        group_params("dbservers", firewall_egress=[]),
        group_params(
            "monitoring",
            firewall_egress=[
                {"name": "node exporter", "port": 9100, "to_group": "all"},
                {"name": "again", "port": 9100, "to_group": "all"},
            ],
        ),
    ]
    spec = build_spec(module_params(groups=groups))
    spec.validate()
    body = desired_firewall(spec, spec.groups[1])
    assert outbound(body) == [("tcp", "9100", (), (TAG("dbservers"), TAG("monitoring"))), ICMP]
    # An empty policy lets out ICMP only.
    assert outbound(desired_firewall(spec, spec.groups[0])) == [ICMP]


def test_a_group_whose_egress_is_off_keeps_all_outbound_open():
    spec = shipped_spec(webservers=True)
    by_name = {g.name: g for g in spec.groups}
    assert by_name["webservers"].firewall_outbound is None
    web = desired_firewall(spec, by_name["webservers"])
    assert web["outbound_rules"] == [dict(r) for r in ALLOW_ALL_OUTBOUND]
    assert desired_firewall(spec, by_name["dbservers"])["outbound_rules"][-1] == ICMP_OUTBOUND
    item = EnvironmentReconciler._firewall_item(web, None)
    assert item.detail == "5 inbound rules, all outbound allowed"
    db = desired_firewall(spec, by_name["dbservers"])
    assert (
        EnvironmentReconciler._firewall_item(db, None).detail == "4 inbound rules, 7 outbound rules"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "port": 80, "to_group": "g", "destinations": ["any"]}, "not both"),
        ({"name": "x", "port": 80}, "to_group .* or destinations"),
        ({"name": "x", "port": 80, "destinations": ["10.0.0.300"]}, "not an address or CIDR"),
        (
            {"name": "x", "port": 0, "destinations": ["any"]},
            r"port must be a port number \(1-65535\)",
        ),
        ({"name": "x", "port": 70000, "destinations": ["any"]}, "1-65535"),
        ({"name": "x", "port": "smtp", "destinations": ["any"]}, "1-65535"),
        ({"name": "x", "port": 80, "proto": "icmp", "destinations": ["any"]}, "tcp or udp"),
    ],
)
def test_bad_entries_are_refused_naming_the_entry(entry, message):
    with pytest.raises(SpecError, match=message) as caught:
        egress_rules_from_policy(
            [{"name": "fine", "port": 53, "destinations": ["any"]}, entry],
            "group g, firewall_egress",
        )
    assert "group g, firewall_egress entry 2 (x)" in str(caught.value)


def test_a_group_outside_the_environment_is_refused_naming_the_entry():
    egress = [{"name": "cache", "port": 6379, "to_group": "cacheservers"}]
    spec = build_spec(module_params(groups=[group_params("appservers", firewall_egress=egress)]))
    with pytest.raises(
        SpecError, match="firewall_egress entry 'cache' goes to the unknown group 'cacheservers'"
    ):
        spec.validate()


def test_a_changed_egress_policy_is_a_difference_and_an_unchanged_one_is_not():
    spec = shipped_spec()
    app = spec.groups[1]
    existing = desired_firewall(spec, app)
    # The API's spelling: ICMP ports "0", empty fields left out, another order.
    existing["outbound_rules"] = [
        {
            "protocol": r["protocol"],
            "ports": r["ports"] or "0",
            "destinations": {k: v for k, v in r["destinations"].items() if v},
        }
        for r in reversed(existing["outbound_rules"])
    ]
    assert firewall_differences(existing, desired_firewall(spec, app)) == []
    # One flow fewer (MySQL on the database servers).
    app.firewall_outbound = [r for r in app.firewall_outbound if r.groups != ("dbservers",)]
    assert firewall_differences(existing, desired_firewall(spec, app)) == ["outbound rules"]
    app.firewall_outbound = None  # egress off: everything open again
    assert firewall_differences(existing, desired_firewall(spec, app)) == ["outbound rules"]


# -- the module against the fake API --------------------------------------------------


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
    return run_module_in_process(capsys, params)[0]


def module_groups(**egress: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The shipped groups as provision.yml passes them (firewall_egress omitted when None)."""
    groups = []
    for group in GROUPS:
        entry: dict[str, Any] = {"name": group, "size": "s-1vcpu-2gb"}
        policy = egress.get(group, shipped_egress(group))
        if policy is not None:
            entry["firewall_egress"] = policy
        groups.append(entry)
    return groups


def stored_outbound(fake: FakeDigitalOcean) -> dict[str, set[tuple[Any, ...]]]:
    """Each firewall's outbound rules as the fake API keeps them."""
    return {
        fw["name"].removeprefix("ocpizza-staging-"): {
            (
                r["protocol"],
                r["ports"],
                tuple(r["destinations"].get("addresses", [])),
                tuple(r["destinations"].get("tags", [])),
            )
            for r in fw["outbound_rules"]
        }
        for fw in fake.firewalls.values()
    }


def test_the_fake_api_gets_the_outbound_rules_and_a_second_run_changes_nothing(fake, capsys):
    plan = run_module(capsys, module_groups(), check_mode=True)
    assert (
        "create firewall ocpizza-staging-monitoring (1 inbound rules, 11 outbound rules)"
        in (plan["plan_lines"])
    )
    first = run_module(capsys, module_groups())
    assert first["changed"] and not first.get("failed"), first
    stored = stored_outbound(fake)
    icmp = ("icmp", "0", tuple(ANY), ())  # the API's spelling of no ports
    assert ("tcp", "3306", (), (TAG("dbservers"),)) in stored["appservers"]
    assert ("tcp", "9100", (), tuple(TAG(g) for g in GROUPS)) in stored["monitoring"]
    assert ("udp", "53", tuple(ANY), ()) in stored["webservers"]
    assert all(icmp in rules for rules in stored.values())
    assert len(stored["monitoring"]) == 11 and len(stored["dbservers"]) == 7
    # Nothing goes to the database servers but from the app servers' firewall.
    assert [g for g, rules in stored.items() if any(r[1] == "3306" for r in rules)] == [
        "appservers"
    ]

    mark = len(fake.requests)
    second = run_module(capsys, module_groups())
    assert not second["changed"], second["plan_lines"]
    assert fake.writes(since=mark) == []

    # Outbound opened by hand in the control panel: put back.
    db = next(f for f in fake.firewalls.values() if f["name"] == TAG("dbservers"))
    db["outbound_rules"].append(
        {"protocol": "tcp", "ports": "0", "destinations": {"addresses": ANY}}
    )
    drifted = run_module(capsys, module_groups())
    assert "update firewall ocpizza-staging-dbservers (outbound rules)" in drifted["plan_lines"]
    assert ("tcp", "0", tuple(ANY), ()) not in stored_outbound(fake)["dbservers"]

    # A new flow in the web servers' policy: reported, put, then stable again.
    web = [*shipped_egress("webservers"), {"name": "redis", "port": 6379, "to_group": "dbservers"}]
    mark = len(fake.requests)
    third = run_module(capsys, module_groups(webservers=web))
    assert "update firewall ocpizza-staging-webservers (outbound rules)" in third["plan_lines"]
    assert [r.method for r in fake.writes(since=mark)] == ["PUT"]
    assert ("tcp", "6379", (), (TAG("dbservers"),)) in stored_outbound(fake)["webservers"]
    mark = len(fake.requests)
    assert not run_module(capsys, module_groups(webservers=web))["changed"]
    assert fake.writes(since=mark) == []

    # Egress off for the web servers: all outbound open again, once.
    off = run_module(capsys, module_groups(webservers=None))
    assert "update firewall ocpizza-staging-webservers (outbound rules)" in off["plan_lines"]
    assert stored_outbound(fake)["webservers"] == {
        ("tcp", "0", tuple(ANY), ()),
        ("udp", "0", tuple(ANY), ()),
        icmp,
    }
    assert not run_module(capsys, module_groups(webservers=None))["changed"]


def test_the_module_refuses_a_bad_entry_before_any_call(fake, capsys):
    bad = [{"name": "smtp relay", "port": 587, "destinations": ["mail.example.com"]}]
    result = run_module(capsys, module_groups(monitoring=bad))
    assert result["failed"]
    assert "group monitoring, firewall_egress entry 1 (smtp relay)" in result["msg"]
    assert "'mail.example.com' is not an address or CIDR" in result["msg"]
    assert fake.writes() == []
