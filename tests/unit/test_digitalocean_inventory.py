"""The ocpizza_digitalocean inventory plugin (in-process) against the fake API."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from fake_digitalocean import FakeConfig
from fake_digitalocean.testing import REPO, serving

inventory_loader.add_directory(str(REPO / "inventory_plugins"))

STAGING = ["ocpizza", "env:staging"]


@pytest.fixture
def fake(monkeypatch):
    with serving(monkeypatch, FakeConfig(max_per_page=2)) as server:
        yield server


def parse(
    tmp_path, text="plugin: ocpizza_digitalocean\nenvironment: staging\n", name="digitalocean.yml"
):
    path = tmp_path / name
    path.write_text(text)
    plugin = inventory_loader.get("ocpizza_digitalocean")
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(path), cache=False)
    return plugin, inventory


def members(inventory, group):
    return sorted(h.name for h in inventory.groups[group].get_hosts())


def test_droplets_are_grouped_by_tag_and_filtered_by_environment(fake, tmp_path):
    fake.add_droplet("ocpizza-staging-db1", [*STAGING, "group:dbservers"])
    fake.add_droplet("ocpizza-staging-app1", [*STAGING, "group:appservers"])
    fake.add_droplet("ocpizza-staging-app2", [*STAGING, "group:appservers"])
    fake.add_droplet("ocpizza-staging-web1", [*STAGING, "group:webservers"])
    fake.add_droplet("ocpizza-production-db1", ["ocpizza", "env:production", "group:dbservers"])
    fake.add_droplet("someone-elses", ["env:staging", "group:dbservers"])
    _, inventory = parse(tmp_path)
    assert members(inventory, "dbservers") == ["ocpizza-staging-db1"]
    assert members(inventory, "appservers") == ["ocpizza-staging-app1", "ocpizza-staging-app2"]
    assert members(inventory, "webservers") == ["ocpizza-staging-web1"]
    assert sorted(inventory.hosts) == [
        "ocpizza-staging-app1",
        "ocpizza-staging-app2",
        "ocpizza-staging-db1",
        "ocpizza-staging-web1",
    ]
    assert inventory.groups["all"].vars["ocpizza_do_environment"] == "staging"


def test_hosts_are_reached_on_the_public_address_and_talk_on_the_private_one(fake, tmp_path):
    vpc = fake._create_vpc(body={"name": "v", "region": "fra1"})[1]["vpc"]
    droplet = fake.add_droplet("ocpizza-staging-db1", [*STAGING, "group:dbservers"])
    droplet["vpc_uuid"] = vpc["id"]
    fake._activate(droplet)
    public = next(n["ip_address"] for n in droplet["networks"]["v4"] if n["type"] == "public")
    private = next(n["ip_address"] for n in droplet["networks"]["v4"] if n["type"] == "private")
    _, inventory = parse(tmp_path)
    host_vars = inventory.get_host("ocpizza-staging-db1").vars
    assert host_vars["ansible_host"] == public
    assert host_vars["ocpizza_private_ip"] == private
    assert public != private
    assert host_vars["ocpizza_do_droplet"]["id"] == droplet["id"]
    assert host_vars["ocpizza_do_droplet"]["size_slug"] == "s-1vcpu-1gb"


def test_droplets_still_being_created_are_left_out(fake, tmp_path):
    fake.add_droplet("ocpizza-staging-db1", [*STAGING, "group:dbservers"], status="new")
    _, inventory = parse(tmp_path)
    assert "ocpizza-staging-db1" not in inventory.hosts


def test_unknown_group_tags_make_no_group(fake, tmp_path):
    fake.add_droplet("ocpizza-staging-x1", [*STAGING, "group:mailservers"])
    _, inventory = parse(tmp_path)
    assert "mailservers" not in inventory.groups
    assert "ocpizza-staging-x1" in inventory.hosts


def test_constructed_options_apply(fake, tmp_path):
    fake.add_droplet("ocpizza-staging-web1", [*STAGING, "group:webservers"], region="ams3")
    text = (
        "plugin: ocpizza_digitalocean\nenvironment: staging\n"
        "compose:\n  ansible_user: \"'root'\"\n"
        "keyed_groups:\n  - key: ocpizza_do_droplet.region\n    prefix: region\n"
    )
    _, inventory = parse(tmp_path, text)
    assert inventory.get_host("ocpizza-staging-web1").vars["ansible_user"] == "root"
    assert members(inventory, "region_ams3") == ["ocpizza-staging-web1"]


def test_the_cache_spares_the_api(fake, tmp_path):
    fake.add_droplet("ocpizza-staging-db1", [*STAGING, "group:dbservers"])
    text = (
        "plugin: ocpizza_digitalocean\nenvironment: staging\ncache: true\n"
        f"cache_plugin: jsonfile\ncache_connection: {tmp_path / 'cache'}\n"
    )
    path = tmp_path / "digitalocean.yml"
    path.write_text(text)
    plugin = inventory_loader.get("ocpizza_digitalocean")
    plugin.parse(InventoryData(), DataLoader(), str(path), cache=False)  # refresh: fills it
    plugin.update_cache_if_changed()  # what Ansible's InventoryManager does after parse()
    calls = fake.count("GET", "^/v2/droplets$")
    plugin = inventory_loader.get("ocpizza_digitalocean")
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(path), cache=True)
    assert fake.count("GET", "^/v2/droplets$") == calls
    assert "ocpizza-staging-db1" in inventory.hosts


def test_a_bad_token_fails_the_source_with_the_reason(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", "wrong")
    with pytest.raises(AnsibleParserError, match="rejected the API token"):
        parse(tmp_path)


def test_a_missing_token_is_named(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("DIGITALOCEAN_TOKEN")
    with pytest.raises(AnsibleParserError, match="DIGITALOCEAN_TOKEN"):
        parse(tmp_path)


def test_only_its_own_files_are_claimed(tmp_path):
    plugin = inventory_loader.get("ocpizza_digitalocean")
    for name, expected in (
        ("digitalocean.yml", True),
        ("prod.digitalocean.yaml", True),
        ("hosts.yml", False),
    ):
        path = tmp_path / name
        path.write_text("plugin: ocpizza_digitalocean\n")
        assert plugin.verify_file(str(path)) is expected


def test_a_bad_environment_name_is_refused(fake, tmp_path):
    with pytest.raises(AnsibleParserError, match="environment 'Staging'"):
        parse(tmp_path, "plugin: ocpizza_digitalocean\nenvironment: Staging\n")
