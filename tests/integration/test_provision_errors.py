"""Errors of provision.yml and deprovision.yml are clear and leave nothing half-made."""

from __future__ import annotations

import pytest
from fake_digitalocean import FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import ansible_env, playbook_command, run, write_extra_vars


@pytest.fixture
def fake():
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.3)) as server:
        yield server


def flat(result):
    return " ".join((result.stdout + result.stderr).split())


def test_a_missing_token_stops_before_any_call(fake, tmp_path):
    result = run(
        playbook_command("provision.yml", "-e", f"@{write_extra_vars(tmp_path)}"),
        ansible_env(fake, token=None),
    )
    assert result.returncode != 0
    assert "No DigitalOcean API token: export DIGITALOCEAN_TOKEN" in flat(result)
    assert fake.requests == []


def test_a_bad_token_says_so(fake, tmp_path):
    result = run(
        playbook_command("provision.yml", "-e", f"@{write_extra_vars(tmp_path)}"),
        ansible_env(fake, token="revoked-token"),
    )
    assert result.returncode != 0
    assert "DigitalOcean rejected the API token (HTTP 401 Unauthorized" in flat(result)
    assert "revoked-token" not in flat(result)
    assert fake.writes() == []


def test_unknown_image_and_region_are_named_and_nothing_is_made(fake, tmp_path):
    extra = write_extra_vars(
        tmp_path, ocpizza_do_image="ubuntu-18-04-x64", ocpizza_do_region="par1"
    )
    result = run(playbook_command("provision.yml", "-e", f"@{extra}"), ansible_env(fake))
    assert result.returncode != 0
    message = flat(result)
    assert "unknown or unavailable region 'par1'" in message
    assert "unknown image 'ubuntu-18-04-x64' for dbservers, appservers, webservers" in message
    assert fake.writes() == []


def test_a_size_digitalocean_no_longer_sells_is_named(tmp_path):
    config = FakeConfig(active_after_seconds=0.3)
    del config.sizes["s-4vcpu-8gb"]
    with FakeDigitalOcean(config) as fake:
        result = run(
            playbook_command("provision.yml", "-e", f"@{write_extra_vars(tmp_path)}"),
            ansible_env(fake),
        )
        assert result.returncode != 0
        assert "unknown size 's-4vcpu-8gb' for group dbservers" in flat(result)
        assert fake.writes() == []


def only_the_inventory_read(fake):
    """True when the only requests are the inventory plugin's listing: the module made none."""
    return {(r.method, r.path) for r in fake.requests} <= {("GET", "/v2/droplets")}


def test_a_malformed_load_balancer_is_named_before_any_call(fake, tmp_path):
    extra = write_extra_vars(
        tmp_path,
        ocpizza_do_load_balancer={
            "target_group": "webservers",
            "size_unit": 250,
            "forwarding_rules": [{"entry_protocol": "tcp", "entry_port": 4430}],
            "health_check": {"protocol": "http", "port": 80, "path": "/healthz"},
        },
    )
    result = run(playbook_command("provision.yml", "-e", f"@{extra}"), ansible_env(fake))
    assert result.returncode != 0
    assert "ocpizza_do_load_balancer.size_unit: unknown size 250" in flat(result)
    assert only_the_inventory_read(fake)
    extra = write_extra_vars(
        tmp_path,
        ocpizza_do_load_balancer={
            "target_group": "webservers",
            "forwarding_rules": [{"entry_protocol": "tcp", "entry_port": 443, "target_port": 0}],
            "health_check": {"protocol": "http", "port": 80, "path": "/healthz"},
        },
    )
    result = run(playbook_command("provision.yml", "-e", f"@{extra}"), ansible_env(fake))
    assert result.returncode != 0
    assert "ocpizza_do_load_balancer.forwarding_rules[0].target_port: 0 is not a port" in (
        flat(result)
    )
    assert only_the_inventory_read(fake)


def test_rate_limits_are_ridden_out(fake, tmp_path):
    fake.rate_limit(3, method="POST", path="^/v2/droplets$")
    fake.rate_limit(3, method="GET", path="^/v2/droplets$")
    result = run(
        playbook_command("provision.yml", "-e", f"@{write_extra_vars(tmp_path)}"), ansible_env(fake)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake.count("POST", "^/v2/droplets$", 429) == 3
    assert fake.droplets_created == 4
    assert fake.duplicate_names() == {}


def test_an_invalid_environment_name_is_refused(fake, tmp_path):
    extra = write_extra_vars(tmp_path, ocpizza_do_environment="Prod_1")
    result = run(playbook_command("provision.yml", "-e", f"@{extra}"), ansible_env(fake))
    assert result.returncode != 0
    assert "ocpizza_do_environment must name the environment" in flat(result)
    assert fake.writes() == []


def test_deprovision_needs_the_environment_named(fake, tmp_path):
    created = run(
        playbook_command("provision.yml", "-e", f"@{write_extra_vars(tmp_path)}"), ansible_env(fake)
    )
    assert created.returncode == 0, created.stdout + created.stderr
    mark = len(fake.requests)
    for extra in ([], ["-e", "confirm_destroy=production"], ["-e", "confirm_destroy=yes"]):
        result = run(playbook_command("deprovision.yml", *extra), ansible_env(fake))
        assert result.returncode != 0
        assert "Refusing to destroy environment staging" in flat(result)
    assert fake.writes(since=mark) == []
    assert len(fake.droplet_names()) == 4
