"""One firewall policy feeds both firewalls: the cloud rules derived from firewall_allowed."""

from __future__ import annotations

import jinja2
import pytest
import yaml
from fake_digitalocean.testing import REPO, group_params, module_params
from ocpizza_digitalocean.errors import SpecError
from ocpizza_digitalocean.firewall import (
    ANYWHERE,
    FirewallRule,
    desired_firewall,
    rule_from_policy,
    rules_from_policy,
)
from ocpizza_digitalocean.module_args import build_spec

ADMIN = ["203.0.113.0/24"]


def group_vars(group, name):
    """A top-level group_vars file, its Jinja rendered with the platform contract
    (and the outbound destinations of group_vars/all/firewall.yml, as written)."""
    contract = yaml.safe_load((REPO / "group_vars/all/platform_contract.yml").read_text())
    contract |= yaml.safe_load((REPO / "group_vars/all/firewall.yml").read_text())
    text = (REPO / f"group_vars/{group}/{name}.yml").read_text()
    rendered = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text)
    return yaml.safe_load(rendered.render(**contract))


def test_the_project_policy_gives_the_cloud_rules_of_each_group():
    expected = {
        "dbservers": [
            FirewallRule("tcp", "22", tuple(ADMIN)),
            FirewallRule("tcp", "3306", (), ("appservers",)),
            FirewallRule("tcp", "9100", (), ("monitoring",)),
            FirewallRule("tcp", "9104", (), ("monitoring",)),
        ],
        "appservers": [
            FirewallRule("tcp", "22", tuple(ADMIN)),
            FirewallRule("tcp", "8000", (), ("webservers",)),
            FirewallRule("tcp", "8000", (), ("monitoring",)),
            FirewallRule("tcp", "9100", (), ("monitoring",)),
        ],
        "webservers": [
            FirewallRule("tcp", "22", tuple(ADMIN)),
            FirewallRule("tcp", "80", ANYWHERE),
            FirewallRule("tcp", "443", ANYWHERE),
            FirewallRule("tcp", "9100", (), ("monitoring",)),
            FirewallRule("tcp", "9113", (), ("monitoring",)),
        ],
        # Prometheus and Alertmanager through an SSH tunnel only.
        "monitoring": [FirewallRule("tcp", "22", tuple(ADMIN))],
    }
    for group, rules in expected.items():
        allowed = group_vars(group, "firewall")["firewall_allowed"]
        assert rules_from_policy(allowed, ADMIN) == rules, group


def test_the_group_droplet_files_no_longer_carry_firewall_rules():
    for group in ("dbservers", "appservers", "webservers", "monitoring"):
        assert "ocpizza_do_firewall_inbound" not in group_vars(group, "digitalocean")


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        (
            {"name": "mysql", "port": 3306, "from_group": "appservers"},
            FirewallRule("tcp", "3306", (), ("appservers",)),
        ),
        ({"name": "http", "port": 80}, FirewallRule("tcp", "80", ANYWHERE)),
        ({"name": "http", "port": 80, "sources": ["any"]}, FirewallRule("tcp", "80", ANYWHERE)),
        # What the module's argument spec makes of an entry without sources:
        ({"name": "http", "port": 80, "sources": None}, FirewallRule("tcp", "80", ANYWHERE)),
        (
            {"name": "dns", "port": 53, "proto": "udp", "sources": ["10.0.0.0/8"]},
            FirewallRule("udp", "53", ("10.0.0.0/8",)),
        ),
        (
            {"name": "one", "port": "8080", "sources": "192.0.2.1"},
            FirewallRule("tcp", "8080", ("192.0.2.1",)),
        ),
    ],
)
def test_each_kind_of_entry_becomes_its_cloud_rule(entry, rule):
    assert rule_from_policy(entry, "t") == rule


def test_an_empty_source_list_opens_nothing_as_in_nftables():
    assert rule_from_policy({"name": "nobody", "port": 80, "sources": []}, "t") is None
    assert rules_from_policy([{"name": "nobody", "port": 80, "sources": []}]) == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "port": 80, "from_group": "g", "sources": ["any"]}, "not both"),
        ({"name": "x", "port": 80, "sources": ["10.0.0.300"]}, "CIDR"),
        ({"name": "x", "port": "http"}, "ports"),
        ({"name": "x", "port": 80, "proto": "icmp"}, "tcp or udp"),
    ],
)
def test_bad_entries_are_refused_with_their_name(entry, message):
    with pytest.raises(SpecError, match=message) as caught:
        rule_from_policy(entry, "group g, firewall_allowed entry 1")
    assert "(x)" in str(caught.value)


def test_ssh_sources_are_checked():
    with pytest.raises(SpecError, match="ssh_sources"):
        rules_from_policy([], ["not-a-network"])


def test_the_module_builds_the_cloud_firewall_from_the_policy():
    groups = [
        group_params(group, firewall_allowed=group_vars(group, "firewall")["firewall_allowed"])
        for group in ("dbservers", "appservers", "webservers", "monitoring")
    ]
    params = module_params(ssh_sources=ADMIN, ssh_port=2222, groups=groups)
    spec = build_spec(params)
    spec.validate()
    db = desired_firewall(spec, spec.groups[0])
    assert db["name"] == "ocpizza-staging-dbservers"
    assert db["inbound_rules"] == [
        {"protocol": "tcp", "ports": "2222", "sources": {"addresses": ADMIN, "tags": []}},
        {
            "protocol": "tcp",
            "ports": "3306",
            "sources": {"addresses": [], "tags": ["ocpizza-staging-appservers"]},
        },
        # The exporters answer the monitoring droplet only.
        {
            "protocol": "tcp",
            "ports": "9100",
            "sources": {"addresses": [], "tags": ["ocpizza-staging-monitoring"]},
        },
        {
            "protocol": "tcp",
            "ports": "9104",
            "sources": {"addresses": [], "tags": ["ocpizza-staging-monitoring"]},
        },
    ]
