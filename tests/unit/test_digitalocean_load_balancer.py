"""The environment's load balancer: its spec and checks, its plan, and its reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fake_digitalocean import DEFAULT_TOKEN, FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import TEST_PUBLIC_KEY, group_params, module_params
from ocpizza_digitalocean.client import DigitalOceanClient
from ocpizza_digitalocean.errors import SpecError
from ocpizza_digitalocean.firewall import ANYWHERE, FirewallRule, rules_from_policy
from ocpizza_digitalocean.loadbalancer import (
    PRICE_PER_SIZE_UNIT_MONTHLY,
    LoadBalancerSpec,
    build_load_balancer,
    load_balancer_differences,
)
from ocpizza_digitalocean.module_args import build_spec
from ocpizza_digitalocean.plan import Result
from ocpizza_digitalocean.reconciler import EnvironmentReconciler
from ocpizza_digitalocean.spec import EnvironmentSpec
from ocpizza_digitalocean.transport import TransportSettings

LB_NAME = "ocpizza-staging-lb"
WEB_POLICY: list[dict[str, Any]] = [
    {"name": "http", "port": 80, "from_load_balancer": True},
    {"name": "https", "port": 443, "from_load_balancer": True},
]


def lb_option(**overrides: Any) -> dict[str, Any]:
    """The module's ``load_balancer`` option, as group_vars/all/digitalocean.yml gives it."""
    option: dict[str, Any] = {
        "target_group": "webservers",
        "size_unit": 1,
        "forwarding_rules": [
            {
                "entry_protocol": "tcp",
                "entry_port": 443,
                "target_protocol": "tcp",
                "target_port": 443,
            },
            {
                "entry_protocol": "tcp",
                "entry_port": 80,
                "target_protocol": "tcp",
                "target_port": 80,
            },
        ],
        "health_check": {"protocol": "http", "port": 80, "path": "/healthz"},
        "enable_proxy_protocol": True,
        "redirect_http_to_https": False,
    }
    option.update(overrides)
    return option


def make_spec(load_balancer: dict[str, Any] | None = None, **params: Any) -> EnvironmentSpec:
    """A small environment (one web server, one app server) with or without a load balancer."""
    spec = build_spec(
        module_params(
            groups=[
                group_params("appservers", size="s-1vcpu-1gb"),
                group_params("webservers", size="s-1vcpu-1gb", firewall_allowed=WEB_POLICY),
            ],
            ssh_sources=["203.0.113.0/24"],
            ssh_keys=[{"name": "ocpizza-tests", "public_key": TEST_PUBLIC_KEY}],
            load_balancer=load_balancer,
            **params,
        )
    )
    spec.wait_timeout = 10.0
    spec.poll_interval = 0.02
    return spec


@pytest.fixture
def fake() -> Iterator[FakeDigitalOcean]:
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.1)) as server:
        yield server


@pytest.fixture
def client(fake: FakeDigitalOcean) -> DigitalOceanClient:
    return DigitalOceanClient(DEFAULT_TOKEN, fake.url, TransportSettings(timeout=5.0))


def present(client: DigitalOceanClient, spec: EnvironmentSpec, check: bool = False) -> Result:
    return EnvironmentReconciler(client, spec, check_mode=check).present()


def lb_items(result: Result) -> list[tuple[str, str]]:
    return [(i.action, i.detail) for i in result.plan if i.kind == "load_balancer"]


# -- spec and checks -----------------------------------------------------------


def test_the_load_balancer_spec_passes_tls_through_with_the_proxy_protocol() -> None:
    spec = build_load_balancer(lb_option())
    assert isinstance(spec, LoadBalancerSpec)
    body = spec.body(LB_NAME, "ocpizza", "staging", "fra1", "vpc-1")
    assert body["tag"] == "ocpizza-staging-webservers"
    assert body["enable_proxy_protocol"] is True
    assert body["vpc_uuid"] == "vpc-1" and body["region"] == "fra1" and body["size_unit"] == 1
    assert [
        (r["entry_protocol"], r["entry_port"], r["target_port"]) for r in body["forwarding_rules"]
    ] == [
        ("tcp", 443, 443),
        ("tcp", 80, 80),
    ]
    assert all(r["certificate_id"] == "" for r in body["forwarding_rules"])
    assert body["health_check"]["protocol"] == "http"
    assert body["health_check"]["path"] == "/healthz"
    assert spec.monthly_price == PRICE_PER_SIZE_UNIT_MONTHLY


def test_no_option_means_no_load_balancer() -> None:
    assert build_load_balancer(None) is None
    assert build_load_balancer({}) is None
    assert make_spec().load_balancer is None


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (lb_option(size_unit=0), "ocpizza_do_load_balancer.size_unit: unknown size 0"),
        (lb_option(size_unit="large"), "ocpizza_do_load_balancer.size_unit: unknown size 'large'"),
        (
            lb_option(forwarding_rules=[{"entry_protocol": "tcp", "entry_port": 70000}]),
            "ocpizza_do_load_balancer.forwarding_rules[0].entry_port: 70000 is not a port",
        ),
        (
            lb_option(forwarding_rules=[{"entry_protocol": "gopher", "entry_port": 70}]),
            "ocpizza_do_load_balancer.forwarding_rules[0].entry_protocol: 'gopher' is not one of",
        ),
        (
            lb_option(forwarding_rules=["443:443"]),
            "ocpizza_do_load_balancer.forwarding_rules[0]: a forwarding rule must be a mapping",
        ),
        (
            lb_option(
                forwarding_rules=[
                    {"entry_protocol": "tcp", "entry_port": 443, "tls_passthrough": True}
                ]
            ),
            "ocpizza_do_load_balancer.forwarding_rules[0].tls_passthrough: only for an https",
        ),
        (
            lb_option(health_check={"protocol": "http", "port": 80, "path": "healthz"}),
            "ocpizza_do_load_balancer.health_check.path: 'healthz' must start with /",
        ),
        (
            lb_option(health_check={"protocol": "http", "port": 0, "path": "/healthz"}),
            "ocpizza_do_load_balancer.health_check.port: 0 is not a port",
        ),
    ],
)
def test_bad_input_is_named_before_any_call(
    fake: FakeDigitalOcean, client: DigitalOceanClient, option: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=None) as raised:
        present(client, make_spec(option))
    assert message in str(raised.value)
    assert fake.requests == []


def test_an_unknown_target_group_and_a_duplicate_port_are_refused(
    fake: FakeDigitalOcean, client: DigitalOceanClient
) -> None:
    rules = [
        {"entry_protocol": "tcp", "entry_port": 80},
        {"entry_protocol": "http", "entry_port": 80},
    ]
    spec = make_spec(lb_option(target_group="loadbalancers", forwarding_rules=rules))
    with pytest.raises(SpecError) as raised:
        present(client, spec)
    assert (
        "ocpizza_do_load_balancer.target_group: 'loadbalancers' is not a provisioned group"
        in str(raised.value)
    )
    assert "an entry port is listed twice [80, 80]" in str(raised.value)
    assert fake.requests == []


# -- the firewall rules that admit it ------------------------------------------


def test_from_load_balancer_admits_the_load_balancer_or_anyone() -> None:
    with_lb = rules_from_policy(WEB_POLICY, has_load_balancer=True)
    assert with_lb == [
        FirewallRule("tcp", "80", load_balancer=True),
        FirewallRule("tcp", "443", load_balancer=True),
    ]
    without = rules_from_policy(WEB_POLICY, has_load_balancer=False)
    assert [r.addresses for r in without] == [ANYWHERE, ANYWHERE]
    with pytest.raises(SpecError, match="give one of from_group, sources or from_load_balancer"):
        rules_from_policy([{"name": "x", "port": 80, "from_load_balancer": True, "sources": []}])


# -- reconciliation against the fake API ---------------------------------------


def test_created_once_then_kept_with_its_cost_and_the_firewall_admits_it(
    fake: FakeDigitalOcean, client: DigitalOceanClient
) -> None:
    spec = make_spec(lb_option())
    plan = present(client, spec, check=True)
    assert lb_items(plan)[0][0] == "create"
    created = next(i for i in plan.plan if i.kind == "load_balancer")
    assert created.price_monthly == PRICE_PER_SIZE_UNIT_MONTHLY
    assert plan.monthly_cost == 6.0 + 6.0 + PRICE_PER_SIZE_UNIT_MONTHLY
    assert fake.writes() == []

    first = present(client, spec)
    lb = fake.load_balancer_named(LB_NAME)
    assert lb is not None and lb["status"] == "active"
    assert first.load_balancer is not None and first.load_balancer["ip"] == lb["ip"]
    assert lb["vpc_uuid"] == next(iter(fake.vpcs))
    assert lb["tag"] == "ocpizza-staging-webservers" and lb["enable_proxy_protocol"] is True
    web = next(f for f in fake.firewalls.values() if f["name"] == "ocpizza-staging-webservers")
    admitted = {r["ports"]: r["sources"] for r in web["inbound_rules"]}
    assert admitted["80"] == {"load_balancer_uids": [lb["id"]]}
    assert admitted["443"] == {"load_balancer_uids": [lb["id"]]}

    mark = len(fake.requests)
    second = present(client, spec)
    assert lb_items(second) == [("keep", spec.load_balancer.summary())]  # type: ignore[union-attr]
    assert not second.changed and fake.writes(since=mark) == []
    assert len(fake.load_balancers) == 1


def test_drift_is_named_and_put_back(fake: FakeDigitalOcean, client: DigitalOceanClient) -> None:
    spec = make_spec(lb_option())
    present(client, spec)
    lb = fake.load_balancer_named(LB_NAME)
    assert lb is not None
    lb.update(enable_proxy_protocol=False, size_unit=2, tag="somewhere-else")
    lb["forwarding_rules"] = lb["forwarding_rules"][:1]
    lb["health_check"]["path"] = "/"
    plan = present(client, spec, check=True)
    ((action, detail),) = lb_items(plan)
    assert action == "update"
    for words in ("forwarding rules", "health check", "tag", "proxy protocol on", "size 2 → 1"):
        assert words in detail
    assert plan.monthly_cost_change == -PRICE_PER_SIZE_UNIT_MONTHLY
    fixed = present(client, spec)
    assert fixed.changed
    assert fake.count("PUT", "^/v2/load_balancers/") == 1
    assert (
        load_balancer_differences(
            fake.load_balancers[lb["id"]],
            spec.load_balancer.body(LB_NAME, "ocpizza", "staging", "fra1", lb["vpc_uuid"]),  # type: ignore[union-attr]
        )
        == []
    )
    assert not present(client, spec).changed


def test_without_a_load_balancer_the_web_servers_are_open_to_anyone(
    fake: FakeDigitalOcean, client: DigitalOceanClient
) -> None:
    present(client, make_spec())
    assert fake.load_balancers == {}
    web = next(f for f in fake.firewalls.values() if f["name"] == "ocpizza-staging-webservers")
    admitted = {r["ports"]: r["sources"] for r in web["inbound_rules"]}
    assert admitted["443"] == {"addresses": list(ANYWHERE)}


def test_absent_deletes_it_and_counts_its_price(
    fake: FakeDigitalOcean, client: DigitalOceanClient
) -> None:
    present(client, make_spec(lb_option(size_unit=2)))
    plan = EnvironmentReconciler(client, make_spec(), check_mode=True).absent()
    deleted = [i for i in plan.plan if i.kind == "load_balancer"]
    assert [(i.action, i.name, i.price_monthly) for i in deleted] == [
        ("delete", LB_NAME, 2 * PRICE_PER_SIZE_UNIT_MONTHLY)
    ]
    assert plan.monthly_cost_change == -(6.0 + 6.0 + 2 * PRICE_PER_SIZE_UNIT_MONTHLY)
    EnvironmentReconciler(client, make_spec()).absent()
    assert fake.load_balancers == {} and fake.vpcs == {} and fake.firewalls == {}
