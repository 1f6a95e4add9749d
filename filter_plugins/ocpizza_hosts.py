"""Addresses of the hosts of an inventory group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError, AnsibleUndefinedVariable

DOCUMENTATION = r"""
name: ocpizza_group_addresses
short_description: Private addresses of the hosts of an inventory group
description:
  - Returns the C(ocpizza_private_ip) of every host of the group, in inventory
    order, without duplicates. An absent or empty group gives an empty list.
  - The one place where "the addresses of group X" is computed: MySQL grants,
    nginx upstreams, gunicorn's trusted proxies and the firewall rules use it.
  - A host of the group without C(ocpizza_private_ip) (or whose address
    needs facts that were not gathered) is an error that names the host.
positional: _input, groups, hostvars
options:
  _input:
    description: Name of the inventory group.
    type: str
    required: true
  groups:
    description: The C(groups) magic variable.
    type: dict
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  variable:
    description: Host variable holding the address.
    type: str
    default: ocpizza_private_ip
"""

EXAMPLES = r"""
mysql_app_hosts: "{{ 'appservers' | ocpizza_group_addresses(groups, hostvars) }}"
"""

RETURN = r"""
_value:
  description: The addresses, in inventory order.
  type: list
  elements: str
"""


def ocpizza_group_addresses(
    group: str,
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Any],
    variable: str = "ocpizza_private_ip",
) -> list[str]:
    """Return the private address of each host of ``group``."""
    if not isinstance(group, str) or not group:
        raise AnsibleFilterError(f"ocpizza_group_addresses: expected a group name, got {group!r}")
    addresses: list[str] = []
    for host in groups.get(group) or []:
        try:
            value = hostvars[host][variable]
        except (KeyError, AnsibleUndefinedVariable) as exc:
            raise AnsibleFilterError(
                f"ocpizza_group_addresses: host {host} of group {group} has no {variable}"
                " (set it in the inventory, or gather the host's facts first)"
            ) from exc
        address = str(value).strip()
        if not address:
            raise AnsibleFilterError(
                f"ocpizza_group_addresses: host {host} of group {group} has an empty {variable}"
            )
        if address not in addresses:
            addresses.append(address)
    return addresses


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {"ocpizza_group_addresses": ocpizza_group_addresses}
