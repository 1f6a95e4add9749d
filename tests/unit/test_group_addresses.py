from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError, AnsibleUndefinedVariable
from ocpizza_hosts import FilterModule, ocpizza_group_addresses

GROUPS = {"appservers": ["app1", "app2", "app3"], "webservers": ["web1"], "empty": []}
HOSTVARS = {
    "app1": {"ocpizza_private_ip": "10.0.0.2"},
    "app2": {"ocpizza_private_ip": "10.0.0.3"},
    "app3": {"ocpizza_private_ip": "10.0.0.2"},
    "web1": {"ocpizza_private_ip": "10.0.0.9", "other_ip": "192.0.2.9"},
}


def test_addresses_in_inventory_order_without_duplicates():
    assert ocpizza_group_addresses("appservers", GROUPS, HOSTVARS) == ["10.0.0.2", "10.0.0.3"]


def test_absent_or_empty_group_gives_no_address():
    assert ocpizza_group_addresses("dbservers", GROUPS, HOSTVARS) == []
    assert ocpizza_group_addresses("empty", GROUPS, HOSTVARS) == []


def test_another_variable_can_be_read():
    assert ocpizza_group_addresses("webservers", GROUPS, HOSTVARS, variable="other_ip") == [
        "192.0.2.9"
    ]


def test_a_host_without_address_is_named():
    with pytest.raises(AnsibleFilterError, match="host web1 of group webservers has no missing_ip"):
        ocpizza_group_addresses("webservers", GROUPS, HOSTVARS, variable="missing_ip")


class _UndefinedHostvars(dict):
    def __getitem__(self, key):
        raise AnsibleUndefinedVariable("'ansible_facts' is undefined")


def test_an_address_that_needs_missing_facts_names_the_host():
    with pytest.raises(
        AnsibleFilterError, match="host web1 of group webservers has no ocpizza_private_ip"
    ):
        ocpizza_group_addresses("webservers", GROUPS, {"web1": _UndefinedHostvars()})


def test_an_empty_address_is_refused():
    with pytest.raises(AnsibleFilterError, match="empty"):
        ocpizza_group_addresses("webservers", GROUPS, {"web1": {"ocpizza_private_ip": " "}})


@pytest.mark.parametrize("bad", ["", None, 3])
def test_a_bad_group_name_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="group name"):
        ocpizza_group_addresses(bad, GROUPS, HOSTVARS)


def test_registered_for_ansible():
    assert FilterModule().filters()["ocpizza_group_addresses"] is ocpizza_group_addresses
