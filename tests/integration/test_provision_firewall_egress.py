"""provision.yml gives each group's cloud firewall its host's outbound policy (finding 17).

Role digitalocean sends firewall_egress_common + the group's firewall_egress +
firewall_egress_extra as groups[].firewall_egress, run here for real against
the fake DigitalOcean API. The DNS entries' destinations, which the host
firewall takes from each host's facts, are digitalocean_egress_dns_servers in
the cloud layer (any by default): the control node's own resolvers, even when
its facts are cached, never reach a droplet's firewall.
"""

from __future__ import annotations

import json

import pytest
from fake_digitalocean import FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import (
    VENV_BIN,
    ansible_env,
    playbook_command,
    recap,
    run,
    write_extra_vars,
)

ANY = ("0.0.0.0/0", "::/0")
# The control node's resolver, as its cached facts would record it.
CONTROL_NODE_RESOLVER = "192.0.2.53"


@pytest.fixture
def fake():
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.1)) as server:
        yield server


def outbound(fake, group):
    """{(protocol, ports): (addresses, tags)} of a group's cloud firewall, as the API keeps it."""
    firewall = next(f for f in fake.firewalls.values() if f["name"] == f"ocpizza-staging-{group}")
    return {
        (r["protocol"], r["ports"]): (
            tuple(r["destinations"].get("addresses", [])),
            tuple(r["destinations"].get("tags", [])),
        )
        for r in firewall["outbound_rules"]
    }


def test_provision_gives_each_cloud_firewall_the_outbound_policy(fake, tmp_path):
    cache = tmp_path / "facts"
    env = {
        **ansible_env(fake),
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
    }
    # Facts of the control node in the cache: without role digitalocean's
    # digitalocean_egress_dns_servers, firewall_egress_dns_servers would be its resolver.
    inventory = tmp_path / "empty.yml"
    inventory.write_text("all:\n  hosts: {}\n")
    facts = json.dumps({"ansible_dns": {"nameservers": [CONTROL_NODE_RESOLVER]}, "cacheable": True})
    cached = run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-i",
            str(inventory),
            "-m",
            "set_fact",
            "-a",
            facts,
        ],
        env,
    )
    assert cached.returncode == 0, cached.stdout + cached.stderr
    extra = write_extra_vars(tmp_path)

    def provision(*args):
        result = run(playbook_command("provision.yml", "-e", f"@{extra}", *args), env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    first = provision()
    assert CONTROL_NODE_RESOLVER not in json.dumps(list(fake.firewalls.values()))
    app = outbound(fake, "appservers")
    assert app[("udp", "53")] == app[("tcp", "53")] == (ANY, ())
    assert app[("tcp", "3306")] == ((), ("ocpizza-staging-dbservers",))
    assert app[("icmp", "0")] == (ANY, ())
    monitoring = outbound(fake, "monitoring")
    every_group = tuple(
        f"ocpizza-staging-{g}" for g in ("dbservers", "appservers", "webservers", "monitoring")
    )
    assert monitoring[("tcp", "9100")] == ((), every_group)
    assert ("tcp", "3306") not in outbound(fake, "webservers")
    out = " ".join(first.stdout.split())
    assert "create firewall ocpizza-staging-appservers (4 inbound rules, 8 outbound rules)" in out
    assert "create firewall ocpizza-staging-monitoring (1 inbound rules, 11 outbound rules)" in out

    # Unchanged policy: nothing to do.
    mark = len(fake.requests)
    again = provision()
    assert recap(again.stdout)["localhost"]["changed"] == 0
    assert fake.writes(since=mark) == []

    # The inventory narrows the droplets' resolvers: every firewall is updated.
    resolvers = ["67.207.67.2", "67.207.67.3"]
    narrowed = provision("-e", json.dumps({"digitalocean_egress_dns_servers": resolvers}))
    out = " ".join(narrowed.stdout.split())
    assert "update firewall ocpizza-staging-dbservers (outbound rules)" in out
    assert outbound(fake, "dbservers")[("udp", "53")] == (tuple(resolvers), ())

    # firewall_egress_enabled false: the cloud firewalls let everything out again.
    opened = provision("-e", json.dumps({"firewall_egress_enabled": False}))
    out = " ".join(opened.stdout.split())
    assert "update firewall ocpizza-staging-webservers (outbound rules)" in out
    assert outbound(fake, "webservers") == {
        ("tcp", "0"): (ANY, ()),
        ("udp", "0"): (ANY, ()),
        ("icmp", "0"): (ANY, ()),
    }
