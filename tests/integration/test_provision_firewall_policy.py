"""One firewall policy, two firewalls: nftables on the hosts and the DigitalOcean cloud firewall.

Role firewall renders group_vars/<group>/firewall.yml into nftables rules (run
here through ansible-playbook, on a small static inventory); the provisioning
module turns the same file into cloud rules. Both must allow the same ports
from the same places.
"""

from __future__ import annotations

import json
import os
import re
import sys

import yaml
from fake_digitalocean.testing import REPO, VENV_BIN, run
from ocpizza_digitalocean.firewall import ANYWHERE, rules_from_policy

ADDRESSES = {
    "dbservers": "10.0.0.1",
    "appservers": "10.0.0.2",
    "webservers": "10.0.0.3",
    "monitoring": "10.0.0.4",
}
# The contract's names the policies use for ports ({{ ocpizza_gunicorn_port }}...).
CONTRACT = yaml.safe_load((REPO / "group_vars/all/platform_contract.yml").read_text())
ADMIN = ["203.0.113.0/24"]

RENDER = """
- name: Render the nftables ruleset of each host
  hosts: all
  gather_facts: false
  vars_files:
    - {repo}/roles/firewall/vars/main.yml
  vars:
    firewall_ssh_sources: {admin}
    firewall_ssh_port: 22
    firewall_allowed_extra: []
    # No load balancer: entries from_load_balancer admit anyone, in the cloud too.
    firewall_load_balancer_sources: []
    firewall_allow_ping: true
    firewall_log_prefix: ""
    # Inbound only: the outbound policy is compared with the cloud's in
    # tests/integration/test_provision_firewall_egress.py.
    firewall_egress_enabled: false
  tasks:
    - name: Render the ruleset
      ansible.builtin.template:
        src: {repo}/roles/firewall/templates/nftables.conf.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.conf"
        mode: "0600"
"""

ACCEPT = re.compile(r"(?:ip6? saddr \{ (?P<from>[^}]*) \} )?tcp dport (?P<port>\d+) accept")


def nftables_accepts(text):
    """{(port, sources)} of a ruleset; sources () means anyone."""
    return {
        (m["port"], tuple(s.strip() for s in m["from"].split(",")))
        if m["from"]
        else (m["port"], ())
        for m in ACCEPT.finditer(text)
    }


def cloud_accepts(group):
    """The same shape, from the cloud rules the module derives from the group's policy."""
    policy = yaml.safe_load((REPO / f"group_vars/{group}/firewall.yml").read_text())
    text = json.dumps(policy["firewall_allowed"])
    for name in re.findall(r"\{\{ (ocpizza_\w+_port) \}\}", text):
        text = text.replace(f"{{{{ {name} }}}}", str(CONTRACT[name]))
    allowed = json.loads(text)
    accepts = set()
    for rule in rules_from_policy(allowed, ADMIN):
        sources = tuple(ADDRESSES[g] for g in rule.groups) + rule.addresses
        accepts.add((rule.ports, () if sources == ANYWHERE else sources))
    return accepts


def test_host_and_cloud_firewalls_come_from_the_same_policy(tmp_path):
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "children": {
                group: {"hosts": {group[:3] + "1": {"ocpizza_private_ip": address}}}
                for group, address in ADDRESSES.items()
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    playbook = tmp_path / "render.yml"
    playbook.write_text(RENDER.format(repo=REPO, admin=json.dumps(ADMIN), out=tmp_path))
    result = run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), str(playbook)],
        {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for group in ADDRESSES:
        host_rules = nftables_accepts((tmp_path / f"{group[:3]}1.conf").read_text())
        assert host_rules == cloud_accepts(group), group
    # And what they allow is the platform's policy.
    # The exporters and the app's metrics answer the monitoring hosts only.
    mon = ("10.0.0.4",)
    assert cloud_accepts("dbservers") == {
        ("22", tuple(ADMIN)),
        ("3306", ("10.0.0.2",)),
        ("9100", mon),
        ("9104", mon),
    }
    assert cloud_accepts("appservers") == {
        ("22", tuple(ADMIN)),
        ("8000", ("10.0.0.3",)),
        ("8000", mon),
        ("9100", mon),
    }
    assert cloud_accepts("webservers") == {
        ("22", tuple(ADMIN)),
        ("80", ()),
        ("443", ()),
        ("9100", mon),
        ("9113", mon),
    }
    assert cloud_accepts("monitoring") == {("22", tuple(ADMIN))}
