"""The digitalocean_environment module: arguments, safety checks and results (in-process).

library/digitalocean_environment.py is its documentation and a call of
module_args.main(), which these tests run.
"""

from __future__ import annotations

import pytest
from fake_digitalocean import DEFAULT_TOKEN, FakeConfig
from fake_digitalocean.testing import (
    TEST_PUBLIC_KEY,
    group_params,
    module_params,
    run_module_in_process,
    serving,
)
from ocpizza_digitalocean import module_args as module
from ocpizza_digitalocean.errors import SpecError

GROUPS = [
    {
        "name": "dbservers",
        "size": "s-4vcpu-8gb",
        "firewall_inbound": [{"ports": 3306, "sources": {"groups": ["appservers"]}}],
    },
    {
        "name": "appservers",
        "size": "s-2vcpu-4gb",
        "firewall_inbound": [{"ports": 8000, "sources": {"groups": ["webservers"]}}],
    },
    {
        "name": "webservers",
        "size": "s-2vcpu-4gb",
        "firewall_inbound": [{"ports": 443, "sources": {"addresses": ["0.0.0.0/0"]}}],
    },
]


@pytest.fixture
def fake(monkeypatch):
    with serving(monkeypatch, FakeConfig(active_after_seconds=0.1)) as server:
        yield server


def run_module(capsys, check_mode=False, **args):
    params = {
        "environment": "staging",
        "region": "fra1",
        "groups": GROUPS,
        "ssh_keys": [{"name": "k", "public_key": TEST_PUBLIC_KEY}],
        "poll_interval": 0.05,
    }
    params.update(args)
    params["_ansible_check_mode"] = check_mode
    return run_module_in_process(capsys, params)


def test_check_mode_returns_the_plan_and_the_cost(fake, capsys):
    result, _ = run_module(capsys, check_mode=True)
    assert result["changed"] is True
    assert result["created"] == [
        "ocpizza-staging-db1",
        "ocpizza-staging-app1",
        "ocpizza-staging-web1",
    ]
    assert result["monthly_cost"] == 96.0
    assert result["plan_lines"][-1] == "monthly cost: $96.00 (+$96.00/month from this run)"
    assert result["msg"].startswith("9 changes (would apply)")
    assert fake.writes() == []


def test_present_then_again_reports_changed_then_not(fake, capsys):
    first, _ = run_module(capsys)
    assert first["changed"] is True
    assert [d["status"] for d in first["droplets"]] == ["active"] * 3
    assert first["vpc"]["name"] == "ocpizza-staging"
    second, _ = run_module(capsys)
    assert second["changed"] is False
    assert second["msg"] == "environment is already present; nothing to do"
    assert fake.droplets_created == 3


def test_the_token_never_appears_in_the_output(fake, capsys):
    _, out = run_module(capsys, check_mode=True)
    assert DEFAULT_TOKEN not in out


def test_the_token_is_required(fake, capsys, monkeypatch):
    monkeypatch.delenv("DIGITALOCEAN_TOKEN")
    result, _ = run_module(capsys)
    assert result["failed"] is True
    assert "DIGITALOCEAN_TOKEN" in result["msg"]
    assert fake.requests == []


def test_a_bad_token_says_so(fake, capsys):
    result, _ = run_module(capsys, oauth_token="wrong")
    assert result["failed"] is True
    assert "rejected the API token (HTTP 401" in result["msg"]


def test_absent_is_refused_without_the_environment_named(fake, capsys):
    run_module(capsys)
    for confirm in (None, "production", "yes"):
        result, _ = run_module(capsys, state="absent", confirm_destroy=confirm)
        assert result["failed"] is True
        assert "set confirm_destroy to 'staging'" in result["msg"]
    assert len(fake.droplet_names()) == 3
    preview, _ = run_module(capsys, check_mode=True, state="absent")
    assert preview["deleted"] == [
        "ocpizza-staging-app1",
        "ocpizza-staging-db1",
        "ocpizza-staging-web1",
    ]
    assert len(fake.droplet_names()) == 3
    done, _ = run_module(capsys, state="absent", confirm_destroy="staging")
    assert done["changed"] is True and fake.droplet_names() == []


def test_public_keys_are_read_from_files(tmp_path):
    key_file = tmp_path / "id.pub"
    key_file.write_text(TEST_PUBLIC_KEY + "\n")
    assert module.read_public_key("k", {"public_key_file": str(key_file)}) == TEST_PUBLIC_KEY
    with pytest.raises(SpecError, match="cannot read public_key_file"):
        module.read_public_key("k", {"public_key_file": str(tmp_path / "missing.pub")})


def test_a_missing_key_file_fails_the_module_cleanly(fake, capsys, tmp_path):
    result, _ = run_module(
        capsys, ssh_keys=[{"name": "k", "public_key_file": str(tmp_path / "none.pub")}]
    )
    assert result["failed"] is True
    assert "ssh key k: cannot read public_key_file" in result["msg"]
    assert fake.writes() == []


def test_group_defaults():
    assert module.default_prefix("dbservers") == "db"
    assert module.default_prefix("cache") == "cache"
    rule = {"protocol": "tcp", "ports": 8000, "sources": {"groups": ["appservers"]}}
    params = module_params(groups=[group_params("appservers", count=2, firewall_inbound=[rule])])
    spec = module.build_spec(params)
    (group,) = spec.groups
    assert group.droplet_names("ocpizza", "staging") == [
        "ocpizza-staging-app1",
        "ocpizza-staging-app2",
    ]
    assert group.image == "ubuntu-24-04-x64"
    assert group.firewall_inbound[0].ports == "8000"
    assert spec.vpc_name == "ocpizza-staging"
