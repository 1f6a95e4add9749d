"""The environment reconciler (module_utils) against the fake API: plan, idempotency, errors."""

from __future__ import annotations

import pytest
from fake_digitalocean import DEFAULT_TOKEN, FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import TEST_PUBLIC_KEY
from ocpizza_digitalocean.client import DigitalOceanClient
from ocpizza_digitalocean.errors import (
    DigitalOceanError,
    ProvisioningError,
    ProvisioningTimeout,
    SpecError,
)
from ocpizza_digitalocean.firewall import FirewallRule, desired_firewall, firewall_differences
from ocpizza_digitalocean.reconciler import EnvironmentReconciler
from ocpizza_digitalocean.spec import EnvironmentSpec, GroupSpec, SSHKeySpec
from ocpizza_digitalocean.transport import TransportSettings


def rule(ports, addresses=(), groups=()):
    sources = {"addresses": list(addresses), "groups": list(groups)}
    return FirewallRule.from_dict({"protocol": "tcp", "ports": ports, "sources": sources}, "t")


def make_spec(environment="staging", app_count=1, **overrides):
    admin = ["203.0.113.0/24"]
    groups = [
        GroupSpec(
            "dbservers",
            "db",
            "s-4vcpu-8gb",
            "ubuntu-24-04-x64",
            1,
            [rule(3306, groups=["appservers"]), rule(22, admin)],
        ),
        GroupSpec(
            "appservers",
            "app",
            "s-2vcpu-4gb",
            "ubuntu-24-04-x64",
            app_count,
            [rule(8000, groups=["webservers"]), rule(22, admin)],
        ),
        GroupSpec(
            "webservers",
            "web",
            "s-2vcpu-4gb",
            "ubuntu-24-04-x64",
            1,
            [rule(80, ["0.0.0.0/0", "::/0"]), rule(443, ["0.0.0.0/0", "::/0"]), rule(22, admin)],
        ),
    ]
    options = {
        "ssh_keys": [SSHKeySpec("ocpizza-admin", TEST_PUBLIC_KEY)],
        "wait_timeout": 10.0,
        "poll_interval": 0.05,
    }
    options.update(overrides)
    return EnvironmentSpec("ocpizza", environment, "fra1", groups, **options)


@pytest.fixture
def fake():
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.2)) as server:
        yield server


@pytest.fixture
def client(fake):
    settings = TransportSettings(timeout=5.0, backoff_base=0.01)
    return DigitalOceanClient(DEFAULT_TOKEN, fake.url, settings)


def reconcile(client, spec=None, check_mode=False, state="present"):
    reconciler = EnvironmentReconciler(client, spec or make_spec(), check_mode=check_mode)
    return reconciler.present() if state == "present" else reconciler.absent()


def actions(result, kind=None):
    return [(i.action, i.kind, i.name) for i in result.plan if kind in (None, i.kind)]


def test_check_mode_plans_everything_with_the_cost_and_writes_nothing(fake, client):
    result = reconcile(client, check_mode=True)
    assert fake.writes() == []
    assert result.changed
    assert [(a, n) for a, _, n in actions(result, "droplet")] == [
        ("create", "ocpizza-staging-db1"),
        ("create", "ocpizza-staging-app1"),
        ("create", "ocpizza-staging-web1"),
    ]
    assert ("create", "vpc", "ocpizza-staging") in actions(result)
    assert ("create", "ssh_key", "ocpizza-admin") in actions(result)
    assert len(actions(result, "firewall")) == 3
    assert result.monthly_cost == 96.0 and result.monthly_cost_change == 96.0
    lines = result.plan_lines()
    assert (
        "create droplet ocpizza-staging-db1 (dbservers, s-4vcpu-8gb, ubuntu-24-04-x64, fra1)"
        ": $48.00/month" in lines
    )
    assert lines[-1] == "monthly cost: $96.00 (+$96.00/month from this run)"


def test_present_creates_each_droplet_once_and_waits_until_active(fake, client):
    result = reconcile(client)
    assert fake.droplet_names() == [
        "ocpizza-staging-app1",
        "ocpizza-staging-db1",
        "ocpizza-staging-web1",
    ]
    assert fake.droplets_created == 3
    assert fake.duplicate_names() == {}
    assert [d.status for d in result.droplets] == ["active"] * 3
    assert all(d.public_ipv4 and d.private_ipv4 for d in result.droplets)
    assert len(fake.vpcs) == 1 and len(fake.firewalls) == 3 and len(fake.ssh_keys) == 1
    (vpc,) = fake.vpcs.values()
    assert {d["vpc_uuid"] for d in fake.droplets.values()} == {vpc["id"]}
    key_id = next(iter(fake.ssh_keys))
    assert all(fake._droplet_meta[i]["ssh_keys"] == [key_id] for i in fake.droplets)
    db = next(d for d in fake.droplets.values() if d["name"] == "ocpizza-staging-db1")
    assert db["size_slug"] == "s-4vcpu-8gb"
    assert set(db["tags"]) == {
        "ocpizza",
        "env:staging",
        "group:dbservers",
        "ocpizza-staging-dbservers",
    }


def test_a_second_run_changes_nothing_and_sends_no_write(fake, client):
    reconcile(client)
    mark = len(fake.requests)
    result = reconcile(client)
    assert not result.changed
    assert fake.writes(since=mark) == []
    assert fake.droplets_created == 3
    assert result.plan_lines()[0] == "nothing to change"
    assert result.monthly_cost == 96.0 and result.monthly_cost_change == 0.0


def test_firewalls_let_each_group_reach_only_the_next(fake, client):
    reconcile(client)
    by_name = {fw["name"]: fw for fw in fake.firewalls.values()}

    def inbound(group):
        fw = by_name[f"ocpizza-staging-{group}"]
        assert fw["tags"] == [f"ocpizza-staging-{group}"]
        return {
            (
                r["ports"],
                tuple(r["sources"].get("addresses", [])),
                tuple(r["sources"].get("tags", [])),
            )
            for r in fw["inbound_rules"]
        }

    admin = ("203.0.113.0/24",)
    assert inbound("dbservers") == {
        ("3306", (), ("ocpizza-staging-appservers",)),
        ("22", admin, ()),
    }
    assert inbound("appservers") == {
        ("8000", (), ("ocpizza-staging-webservers",)),
        ("22", admin, ()),
    }
    assert inbound("webservers") == {
        ("80", ("0.0.0.0/0", "::/0"), ()),
        ("443", ("0.0.0.0/0", "::/0"), ()),
        ("22", admin, ()),
    }


def test_an_interrupted_run_is_finished_by_the_next_without_duplicates(fake, client):
    fake.config.active_after_seconds = None  # droplets stay "new" until said otherwise
    created_before_failure = []

    original = client.create_droplet

    def create_then_fail(**kwargs):
        if created_before_failure:
            raise DigitalOceanError("connection reset", None, None, "POST", "/droplets")
        created_before_failure.append(kwargs["name"])
        return original(**kwargs)

    client.create_droplet = create_then_fail
    with pytest.raises(ProvisioningError, match="got no answer"):
        reconcile(client)
    assert fake.droplet_names() == ["ocpizza-staging-db1"]

    client.create_droplet = original
    fake.config.active_after_seconds = 0.2
    result = reconcile(client)
    assert ("wait", "droplet", "ocpizza-staging-db1") in actions(result)
    assert [n for a, _, n in actions(result, "droplet") if a == "create"] == [
        "ocpizza-staging-app1",
        "ocpizza-staging-web1",
    ]
    assert fake.droplets_created == 3
    assert fake.duplicate_names() == {}
    assert [d.status for d in result.droplets] == ["active"] * 3


def test_a_create_without_answer_is_adopted_when_it_happened(fake, client):
    original = client.create_droplet

    def create_but_lose_the_answer(**kwargs):
        original(**kwargs)
        raise DigitalOceanError("read timed out", None, None, "POST", "/droplets")

    client.create_droplet = create_but_lose_the_answer
    result = reconcile(client)
    assert fake.droplets_created == 3
    assert fake.duplicate_names() == {}
    assert [d.status for d in result.droplets] == ["active"] * 3


def test_droplets_that_never_become_active_time_out_and_a_rerun_waits_for_them(fake, client):
    fake.config.active_after_seconds = None
    with pytest.raises(ProvisioningTimeout) as caught:
        reconcile(client, make_spec(wait_timeout=0.3))
    assert "not active after 0.3 s" in str(caught.value)
    assert "Run again" in str(caught.value)
    fake.config.active_after_seconds = 0.0
    result = reconcile(client)
    assert not [a for a, _, _ in actions(result, "droplet") if a == "create"]
    assert fake.droplets_created == 3
    assert [d.status for d in result.droplets] == ["active"] * 3


def test_a_droplet_that_fails_to_build_is_reported(fake, client):
    fake.config.active_after_seconds = None
    fake.config.failing_droplet_names = {"ocpizza-staging-web1"}
    with pytest.raises(ProvisioningError, match="creating droplet ocpizza-staging-web1 failed"):
        reconcile(client)


def test_existing_duplicates_stop_the_run_before_any_change(fake, client):
    tags = ["ocpizza", "env:staging", "group:dbservers", "ocpizza-staging-dbservers"]
    first = fake.add_droplet("ocpizza-staging-db1", tags)
    second = fake.add_droplet("ocpizza-staging-db1", tags)
    with pytest.raises(ProvisioningError) as caught:
        reconcile(client)
    assert f"ids {first['id']}, {second['id']}" in str(caught.value)
    assert fake.writes() == []


def test_unknown_size_image_or_region_is_named_and_nothing_is_made(fake, client):
    spec = make_spec()
    spec.region = "par1"
    spec.groups[0].size = "s-64vcpu-1tb"
    spec.groups[1].image = spec.groups[2].image = "ubuntu-18-04-x64"
    with pytest.raises(SpecError) as caught:
        reconcile(client, spec)
    message = str(caught.value)
    assert "unknown or unavailable region 'par1'" in message
    assert "unknown size 's-64vcpu-1tb' for group dbservers" in message
    assert "unknown image 'ubuntu-18-04-x64' for appservers, webservers" in message
    assert fake.writes() == []


def test_a_422_on_create_names_the_droplet_and_its_size_image_region(fake, client):
    fake.inject(
        422,
        method="POST",
        path="^/v2/droplets$",
        body={
            "id": "unprocessable_entity",
            "message": "You specified an invalid size for Droplet creation.",
        },
    )
    with pytest.raises(SpecError) as caught:
        reconcile(client)
    message = str(caught.value)
    assert "refused to create droplet ocpizza-staging-db1" in message
    assert "invalid size" in message
    assert "size=s-4vcpu-8gb, image=ubuntu-24-04-x64, region=fra1" in message
    assert fake.droplet_names() == []


def test_a_changed_firewall_is_put_back_and_a_lost_tag_is_added_again(fake, client):
    reconcile(client)
    web = next(fw for fw in fake.firewalls.values() if fw["name"].endswith("webservers"))
    web["inbound_rules"].append(
        {"protocol": "tcp", "ports": "3306", "sources": {"addresses": ["0.0.0.0/0"]}}
    )
    db = next(d for d in fake.droplets.values() if d["name"].endswith("db1"))
    db["tags"].remove("group:dbservers")
    mark = len(fake.requests)
    result = reconcile(client)
    assert ("update", "firewall", "ocpizza-staging-webservers") in actions(result)
    assert ("update", "droplet", "ocpizza-staging-db1") in actions(result)
    assert [(r.method, r.path) for r in fake.writes(since=mark)] == [
        ("PUT", f"/v2/firewalls/{web['id']}"),
        ("POST", "/v2/tags/group:dbservers/resources"),
    ]
    assert "group:dbservers" in db["tags"]
    mark = len(fake.requests)
    assert not reconcile(client).changed
    assert fake.writes(since=mark) == []


def test_more_droplets_in_a_group_are_added_without_touching_the_others(fake, client):
    reconcile(client)
    result = reconcile(client, make_spec(app_count=2))
    assert [n for a, _, n in actions(result, "droplet") if a == "create"] == [
        "ocpizza-staging-app2"
    ]
    assert result.monthly_cost == 120.0 and result.monthly_cost_change == 24.0
    assert fake.droplets_created == 4


def test_absent_removes_only_this_environment(fake, client):
    reconcile(client)
    reconcile(client, make_spec(environment="production"))
    stranger = fake.add_droplet("not-ours", ["env:staging"])
    check = reconcile(client, check_mode=True, state="absent")
    assert check.monthly_cost_change == -96.0
    assert len(fake.droplets) == 7
    # DigitalOcean refuses to delete a VPC until its droplets are gone: retried.
    fake.inject(
        403,
        method="DELETE",
        path="^/v2/vpcs/",
        times=2,
        body={"id": "forbidden", "message": "Can not delete VPC with members"},
    )
    result = reconcile(client, state="absent")
    assert result.changed
    assert sorted(d["name"] for d in fake.droplets.values()) == [
        "not-ours",
        "ocpizza-production-app1",
        "ocpizza-production-db1",
        "ocpizza-production-web1",
    ]
    assert stranger["id"] in fake.droplets
    assert [v["name"] for v in fake.vpcs.values()] == ["ocpizza-production"]
    assert all(fw["name"].startswith("ocpizza-production-") for fw in fake.firewalls.values())
    assert not [t for t in fake.tags if t.startswith("ocpizza-staging-")]
    assert len(fake.ssh_keys) == 1
    mark = len(fake.requests)
    assert not reconcile(client, state="absent").changed
    assert fake.writes(since=mark) == []


def test_absent_leaves_an_environment_whose_name_only_starts_the_same(fake, client):
    reconcile(client, make_spec(environment="staging-eu"))
    reconcile(client)
    reconcile(client, state="absent")
    assert fake.droplet_names() == [
        "ocpizza-staging-eu-app1",
        "ocpizza-staging-eu-db1",
        "ocpizza-staging-eu-web1",
    ]
    assert sorted(fw["name"] for fw in fake.firewalls.values()) == [
        "ocpizza-staging-eu-appservers",
        "ocpizza-staging-eu-dbservers",
        "ocpizza-staging-eu-webservers",
    ]
    assert {"ocpizza-staging-eu-dbservers", "ocpizza-staging-eu-webservers"} <= set(fake.tags)
    assert [v["name"] for v in fake.vpcs.values()] == ["ocpizza-staging-eu"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("environment", "Staging", "environment 'Staging'"),
        ("environment", "a" * 21, "environment"),
        ("project", "-x", "project '-x'"),
        ("region", "", "region is empty"),
    ],
)
def test_invalid_names_are_refused_before_any_call(field, value, message):
    spec = make_spec()
    setattr(spec, field, value)
    with pytest.raises(SpecError, match=message):
        spec.validate()


def test_a_rule_naming_an_unknown_group_is_refused():
    spec = make_spec()
    spec.groups[0].firewall_inbound.append(rule(5432, groups=["cacheservers"]))
    with pytest.raises(SpecError, match="unknown group 'cacheservers'"):
        spec.validate()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"protocol": "sctp", "ports": 1, "sources": {"addresses": ["0.0.0.0/0"]}}, "protocol"),
        ({"protocol": "tcp", "ports": "http", "sources": {"addresses": ["0.0.0.0/0"]}}, "ports"),
        ({"protocol": "tcp", "ports": 22, "sources": {}}, "sources"),
        ({"protocol": "tcp", "ports": 22, "sources": {"addresses": ["10.0.0.300/8"]}}, "CIDR"),
    ],
)
def test_bad_firewall_rules_are_refused(data, message):
    with pytest.raises(SpecError, match=message):
        FirewallRule.from_dict(data, "group x, firewall rule 1")


def test_a_single_network_is_taken_as_a_list():
    rule = FirewallRule.from_dict({"ports": 22, "sources": {"addresses": "10.0.0.0/8"}}, "t")
    assert rule.addresses == ("10.0.0.0/8",)


def test_firewall_comparison_ignores_order_and_the_apis_spelling_of_all_ports():
    desired = desired_firewall(make_spec(), make_spec().groups[2])
    existing = dict(desired)
    existing["inbound_rules"] = list(reversed(desired["inbound_rules"]))
    existing["outbound_rules"] = [
        {**r, "ports": "0" if r["ports"] == "all" else r["ports"]}
        for r in desired["outbound_rules"]
    ]
    assert firewall_differences(existing, desired) == []
    existing["tags"] = ["something-else"]
    assert firewall_differences(existing, desired) == ["target tags"]
