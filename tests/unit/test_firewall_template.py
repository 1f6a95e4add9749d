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
        "firewall_egress_enabled": True,
        "firewall__egress_rules": [],
        "firewall__egress_counter": "egress_dropped",
        "firewall_egress_log_prefix": "nft-drop-out: ",
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


# --- Outbound (finding 17) -------------------------------------------------------


def chain(ruleset: str, name: str) -> list[str]:
    """The lines of one chain, whitespace collapsed, without blanks and comments."""
    lines = ruleset.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"chain {name} {{")
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.strip() == "}":
            break
        if line.strip() and not line.strip().startswith("#"):
            body.append(" ".join(line.split()))
    return body


def test_the_output_chain_drops_by_default_and_counts_and_logs_what_it_drops():
    output = chain(render(), "output")
    assert output[0] == "type filter hook output priority 0; policy drop;"
    assert "ct state established,related accept" in output
    assert 'oif "lo" accept' in output
    # ICMP errors and IPv6 neighbour discovery go out; no echo request, no other ICMP.
    assert any(
        line.startswith("ip protocol icmp icmp type { destination-unreachable") for line in output
    )
    assert any("nd-neighbor-solicit" in line for line in output)
    assert not any("echo-request" in line for line in output)
    # Nothing else is accepted; the last rules count, then log (rate-limited) what is dropped.
    accepts = [line for line in output if line.endswith("accept") or " accept comment " in line]
    assert len(accepts) == 4, accepts
    assert output[-2:] == [
        'counter name "egress_dropped"',
        'limit rate 5/minute log prefix "nft-drop-out: "',
    ]


def test_the_drop_counter_is_declared_in_the_table():
    ruleset = render()
    assert re.search(r"^    counter egress_dropped \{\n    \}$", ruleset, re.M), ruleset


def test_egress_off_accepts_everything_outbound_and_declares_no_counter():
    ruleset = render(
        firewall_egress_enabled=False,
        firewall__egress_rules=[
            {"name": "dns", "port": 53, "proto": "udp", "destinations": ["any"]}
        ],
    )
    assert chain(ruleset, "output") == ["type filter hook output priority 0; policy accept;"]
    assert "egress_dropped" not in ruleset


def test_an_empty_log_prefix_keeps_the_counter():
    output = chain(render(firewall_egress_log_prefix=""), "output")
    assert output[-1] == 'counter name "egress_dropped"'
    assert not any(" log " in line for line in output)


def test_each_egress_entry_gets_its_rule_to_its_destinations():
    ruleset = render(
        firewall__rules=[{"name": "gunicorn from web", "port": 8000, "from_group": "webservers"}],
        firewall__egress_rules=[
            {"name": "mysql on the database servers", "port": 3306, "to_group": "dbservers"},
            {"name": "dns", "port": 53, "proto": "udp", "destinations": ["10.89.57.1"]},
            {"name": "git over ssh", "port": 22, "destinations": ["any"]},
            {"name": "nobody", "port": 9104, "to_group": "monitoring"},
        ],
        groups={"dbservers": ["db1"], "webservers": ["web1"], "monitoring": []},
        hostvars={
            "db1": {"ocpizza_private_ip": "10.0.0.11"},
            "web1": {"ocpizza_private_ip": "10.0.0.31"},
        },
    )
    output = chain(ruleset, "output")
    assert (
        'ip daddr { 10.0.0.11 } tcp dport 3306 accept comment "mysql on the database servers"'
        in output
    )
    assert 'ip daddr { 10.89.57.1 } udp dport 53 accept comment "dns"' in output
    assert 'tcp dport 22 accept comment "git over ssh"' in output
    assert not any('"nobody"' in line for line in output)  # an empty group opens nothing
    # Inbound rules stay in the input chain, outbound ones in the output chain.
    assert not any("daddr" in line for line in chain(ruleset, "input"))
    assert not any("saddr" in line for line in output)
    assert 'ip saddr { 10.0.0.31 } tcp dport 8000 accept comment "gunicorn from web"' in chain(
        ruleset, "input"
    )


def egress(destinations: list[str]) -> list[str]:
    output = chain(
        render(
            firewall__egress_rules=[{"name": "https", "port": 443, "destinations": destinations}]
        ),
        "output",
    )
    return [line for line in output if line.endswith('accept comment "https"')]


@pytest.mark.parametrize(
    ("destinations", "expected"),
    [
        (["0.0.0.0/0"], ['meta nfproto ipv4 tcp dport 443 accept comment "https"']),
        (["::/0"], ['meta nfproto ipv6 tcp dport 443 accept comment "https"']),
        (
            ["0.0.0.0/0", "::/0"],
            [
                'meta nfproto ipv4 tcp dport 443 accept comment "https"',
                'meta nfproto ipv6 tcp dport 443 accept comment "https"',
            ],
        ),
        (
            ["198.51.100.0/24", "2001:db8::/32", "203.0.113.7"],
            [
                'ip daddr { 198.51.100.0/24, 203.0.113.7 } tcp dport 443 accept comment "https"',
                'ip6 daddr { 2001:db8::/32 } tcp dport 443 accept comment "https"',
            ],
        ),
        (["any"], ['tcp dport 443 accept comment "https"']),
        ([], []),
    ],
)
def test_egress_destinations_keep_their_address_family(destinations, expected):
    assert egress(destinations) == expected


def test_a_group_of_both_families_gets_two_egress_rules():
    output = chain(
        render(
            firewall__egress_rules=[{"name": "gunicorn", "port": 8000, "to_group": "appservers"}],
            groups={"appservers": ["app1", "app2"]},
            hostvars={
                "app1": {"ocpizza_private_ip": "10.0.0.21"},
                "app2": {"ocpizza_private_ip": "fd00::22"},
            },
        ),
        "output",
    )
    assert [line for line in output if "gunicorn" in line] == [
        'ip daddr { 10.0.0.21 } tcp dport 8000 accept comment "gunicorn"',
        'ip6 daddr { fd00::22 } tcp dport 8000 accept comment "gunicorn"',
    ]


def project_egress(group: str) -> list[dict[str, Any]]:
    """A group's firewall_egress as shipped (its Jinja left unrendered)."""
    return yaml.safe_load((REPO / "group_vars" / group / "firewall.yml").read_text())[
        "firewall_egress"
    ]


def test_each_tier_reaches_the_other_tiers_it_needs_by_group():
    by_group = {
        group: {
            (e.get("to_group"), str(e["port"])) for e in project_egress(group) if "to_group" in e
        }
        for group in (
            "appservers",
            "webservers",
            "monitoring",
            "loadbalancers",
            "dbservers",
            "forge",
        )
    }
    assert by_group["appservers"] == {("dbservers", "{{ ocpizza_mysql_port }}")}
    assert by_group["webservers"] == {("appservers", "{{ ocpizza_gunicorn_port }}")}
    assert by_group["monitoring"] == {
        ("all", "{{ ocpizza_node_exporter_port }}"),
        ("dbservers", "{{ ocpizza_mysqld_exporter_port }}"),
        ("webservers", "{{ ocpizza_nginx_exporter_port }}"),
        ("appservers", "{{ ocpizza_gunicorn_port }}"),
    }
    assert by_group["loadbalancers"] == {("webservers", "80"), ("webservers", "443")}
    assert by_group["dbservers"] == set() and by_group["forge"] == set()
    # No tier reaches the database but the app servers.
    for group, flows in by_group.items():
        if group not in ("appservers", "monitoring"):
            assert not any(g == "dbservers" for g, _ in flows), group


def test_every_project_egress_entry_names_where_it_goes():
    common = yaml.safe_load((REPO / "group_vars" / "all" / "firewall.yml").read_text())
    entries = common["firewall_egress_common"] + [
        e
        for g in ("appservers", "webservers", "monitoring", "loadbalancers", "dbservers")
        for e in project_egress(g)
    ]
    for entry in entries:
        assert ("to_group" in entry) != ("destinations" in entry), entry
    # The providers' addresses are each narrowable by one inventory variable.
    for entry in entries:
        if "destinations" in entry:
            assert re.fullmatch(r"\{\{ firewall_egress_\w+ \}\}", entry["destinations"]), entry
    assert {
        e["name"]: (e["port"], e.get("proto", "tcp")) for e in common["firewall_egress_common"]
    } == {
        "dns": (53, "udp"),
        "dns over tcp": (53, "tcp"),
        "ntp": (123, "udp"),
        "apt mirrors (http)": (80, "tcp"),
        "apt mirrors (https)": (443, "tcp"),
    }
