"""inventories/staging (the ocpizza_digitalocean plugin) through ansible-inventory."""

from __future__ import annotations

import json

import pytest
from fake_digitalocean import FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import REPO, VENV_BIN, ansible_env, run, unwrap

STAGING = ["ocpizza", "env:staging"]


@pytest.fixture
def fake():
    # Small pages, so that the plugin must follow the API's pagination.
    with FakeDigitalOcean(FakeConfig(max_per_page=2)) as server:
        yield server


def test_staging_groups_its_droplets_by_tag(fake):
    vpc = fake._create_vpc(body={"name": "ocpizza-staging", "region": "fra1"})[1]["vpc"]
    for name, group in (
        ("db1", "dbservers"),
        ("app1", "appservers"),
        ("app2", "appservers"),
        ("web1", "webservers"),
    ):
        droplet = fake.add_droplet(
            f"ocpizza-staging-{name}", [*STAGING, f"group:{group}"], status="new"
        )
        droplet["vpc_uuid"] = vpc["id"]
        fake._activate(droplet)
    fake.add_droplet("ocpizza-production-web1", ["ocpizza", "env:production", "group:webservers"])
    fake.add_droplet("blog", ["env:staging", "group:webservers"])

    result = run(
        [str(VENV_BIN / "ansible-inventory"), "-i", "inventories/staging", "--list"],
        ansible_env(fake),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = unwrap(json.loads(result.stdout))
    assert listed["dbservers"]["hosts"] == ["ocpizza-staging-db1"]
    assert listed["appservers"]["hosts"] == ["ocpizza-staging-app1", "ocpizza-staging-app2"]
    assert listed["webservers"]["hosts"] == ["ocpizza-staging-web1"]
    hostvars = listed["_meta"]["hostvars"]
    assert sorted(hostvars) == [
        "ocpizza-staging-app1",
        "ocpizza-staging-app2",
        "ocpizza-staging-db1",
        "ocpizza-staging-web1",
    ]
    for droplet in fake.droplets.values():
        if droplet["name"] in hostvars:
            v4 = {n["type"]: n["ip_address"] for n in droplet["networks"]["v4"]}
            assert hostvars[droplet["name"]]["ansible_host"] == v4["public"]
            assert hostvars[droplet["name"]]["ocpizza_private_ip"] == v4["private"]
    # The project's group_vars reach these hosts like any other inventory's.
    assert hostvars["ocpizza-staging-db1"]["ocpizza_do_size"] == "s-4vcpu-8gb"
    assert hostvars["ocpizza-staging-web1"]["ocpizza_do_size"] == "s-2vcpu-4gb"
    # Five droplets carry env:staging; at two per page the plugin read three pages.
    assert fake.count("GET", "^/v2/droplets$") == 3


def test_the_staging_file_is_the_plugins():
    text = (REPO / "inventories/staging/digitalocean.yml").read_text()
    assert "plugin: ocpizza_digitalocean" in text
    assert "environment: staging" in text
