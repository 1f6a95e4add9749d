"""Issue 15, finding 6: the nftables ruleset of role firewall, rendered without a host.

The template (roles/firewall/templates/nftables.conf.j2) is rendered with
Ansible's own filters and tests, as the role renders it. Each source opens its
own address family only: 0.0.0.0/0 is every IPv4 client and never IPv6, ::/0
every IPv6 client and never IPv4, IPv4 and IPv6 sources go to separate rules,
and only "any", written out, gives a rule with no source filter. The role has
no permissive default: SSH sources come from the inventory's
ocpizza_admin_networks (an empty list is a row of the bad-input catalog).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import FilterModule as CoreFilters
from ansible.plugins.test.core import TestModule as CoreTests
from ocpizza_hosts import ocpizza_group_addresses

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "firewall"


def render(**variables: Any) -> str:
    """The ruleset the role writes for these variables."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
    )
    # Ansible's filters, except its "default" (it needs Ansible's own Undefined):
    # jinja2's does the same here.
    env.filters.update({k: v for k, v in CoreFilters().filters().items() if k != "default"})
    env.filters["ocpizza_group_addresses"] = ocpizza_group_addresses
    env.tests.update(CoreTests().tests())
    values: dict[str, Any] = {
        "ansible_managed": "Ansible managed",
        "firewall_ssh_port": 22,
        "firewall_ssh_sources": ["192.0.2.0/24"],
        "firewall__rules": [],
        "firewall_load_balancer_sources": [],
        "firewall_allow_ping": True,
        "firewall_log_prefix": "nft-drop: ",
        "groups": {},
        "hostvars": {},
    }
    values.update(variables)
    return env.get_template("nftables.conf.j2").render(**values)


def rules(ruleset: str, comment: str) -> list[str]:
    """The accept rules of one service (by its comment), whitespace collapsed."""
    return [
        " ".join(line.split())
        for line in ruleset.splitlines()
        if line.strip().endswith(f'accept comment "{comment}"')
    ]


def test_0_0_0_0_slash_0_opens_ipv4_only():
    ssh = rules(render(firewall_ssh_sources=["0.0.0.0/0"]), "ssh")
    assert ssh == ['meta nfproto ipv4 tcp dport 22 accept comment "ssh"']


def test_the_ipv6_default_route_opens_ipv6_only():
    ssh = rules(render(firewall_ssh_sources=["::/0"]), "ssh")
    assert ssh == ['meta nfproto ipv6 tcp dport 22 accept comment "ssh"']


def test_ipv4_and_ipv6_sources_get_separate_rules():
    ssh = rules(
        render(firewall_ssh_sources=["198.51.100.0/24", "2001:db8::/32", "203.0.113.7"]), "ssh"
    )
    assert ssh == [
        'ip saddr { 198.51.100.0/24, 203.0.113.7 } tcp dport 22 accept comment "ssh"',
        'ip6 saddr { 2001:db8::/32 } tcp dport 22 accept comment "ssh"',
    ]


def test_every_ipv4_client_and_one_ipv6_network():
    ssh = rules(render(firewall_ssh_sources=["0.0.0.0/0", "2001:db8::/32"]), "ssh")
    assert ssh == [
        'meta nfproto ipv4 tcp dport 22 accept comment "ssh"',
        'ip6 saddr { 2001:db8::/32 } tcp dport 22 accept comment "ssh"',
    ]


def test_only_any_written_out_gives_a_rule_without_a_source_filter():
    ruleset = render(
        firewall_ssh_sources=["any"],
        firewall__rules=[{"name": "https", "port": 443, "sources": ["0.0.0.0/0", "::/0"]}],
    )
    assert rules(ruleset, "ssh") == ['tcp dport 22 accept comment "ssh"']
    # Both families, each by name: still no unfiltered rule.
    assert rules(ruleset, "https") == [
        'meta nfproto ipv4 tcp dport 443 accept comment "https"',
        'meta nfproto ipv6 tcp dport 443 accept comment "https"',
    ]


def test_group_and_load_balancer_entries_keep_their_sources():
    ruleset = render(
        firewall__rules=[
            {"name": "gunicorn", "port": 8000, "from_group": "webservers"},
            {"name": "http", "port": 80, "from_load_balancer": True},
            {"name": "nobody", "port": 9000, "from_group": "monitoring"},
        ],
        firewall_load_balancer_sources=["10.110.0.0/20"],
        groups={"webservers": ["web1", "web2"]},
        hostvars={
            "web1": {"ocpizza_private_ip": "10.0.0.31"},
            "web2": {"ocpizza_private_ip": "fd00::32"},
        },
    )
    assert rules(ruleset, "gunicorn") == [
        'ip saddr { 10.0.0.31 } tcp dport 8000 accept comment "gunicorn"',
        'ip6 saddr { fd00::32 } tcp dport 8000 accept comment "gunicorn"',
    ]
    assert rules(ruleset, "http") == [
        'ip saddr { 10.110.0.0/20 } tcp dport 80 accept comment "http"'
    ]
    assert rules(ruleset, "nobody") == []  # an empty group opens nothing


@pytest.mark.parametrize(
    "sources", [["0.0.0.0/0"], ["::/0"], ["10.0.0.0/8", "fd00::/8"], ["0.0.0.0/0", "::/0"]]
)
def test_no_source_list_short_of_any_yields_an_unfiltered_rule(sources):
    for line in rules(render(firewall_ssh_sources=sources), "ssh"):
        assert re.match(r"^(ip saddr|ip6 saddr|meta nfproto ipv[46]) ", line), line


def test_the_role_has_no_permissive_ssh_default():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["firewall_ssh_sources"] == "{{ ocpizza_admin_networks }}"
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    option = spec["argument_specs"]["main"]["options"]["firewall_ssh_sources"]
    assert "default" not in option and option["required"] is True


def test_no_inventory_inherits_admin_networks_from_the_project() -> None:
    """Each inventory names the networks SSH and /admin/ are open to: no project default."""
    project = yaml.safe_load((REPO / "group_vars" / "all" / "main.yml").read_text())
    assert "ocpizza_admin_networks" not in project
