"""The load balancer's part of a run: find it by name, plan, create or replace, wait.

The load balancer is identified by its name (``<project>-<environment>-lb``):
the reconciler reads the account's load balancers first and creates one only
when none has that name, so a rerun never makes a second one. A drifted one
(forwarding rules, health check, tag, PROXY protocol, size) is replaced with
its desired settings by one PUT. Region and VPC cannot change on DigitalOcean:
a load balancer in the wrong one stops the run with the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .client import slug
from .errors import ProvisioningError, ProvisioningTimeout, SpecError
from .loadbalancer import (
    PRICE_PER_SIZE_UNIT_MONTHLY,
    load_balancer_differences,
    load_balancer_info,
)
from .plan import PlanItem
from .state import EnvironmentState


@dataclass
class LoadBalancerWork:
    """What the plan found and decided about the load balancer."""

    item: PlanItem
    existing: dict[str, Any] | None
    price: float
    change: float

    @property
    def id(self) -> str | None:
        """Id of the existing load balancer (None before it is created)."""
        return None if self.existing is None else str(self.existing["id"])


def unit_price(data: dict[str, Any]) -> float:
    """What an existing load balancer costs a month."""
    return PRICE_PER_SIZE_UNIT_MONTHLY * int(data.get("size_unit") or 1)


def find_load_balancer(state: EnvironmentState) -> dict[str, Any] | None:
    """The environment's load balancer, by name; two of that name stop the run."""
    name = state.spec.load_balancer_name
    found = [lb for lb in state.client.load_balancers() if lb.get("name") == name]
    if len(found) > 1:
        ids = ", ".join(str(lb.get("id")) for lb in found)
        raise ProvisioningError(
            f"Several load balancers are named {name} (ids {ids}); they were not made by "
            "this module, which never duplicates. Delete the extra ones, then run again."
        )
    return found[0] if found else None


def plan_load_balancer(state: EnvironmentState, vpc: dict[str, Any] | None) -> LoadBalancerWork:
    """Plan the load balancer: create, update (naming what drifted) or keep."""
    spec = state.spec
    wanted = spec.load_balancer
    assert wanted is not None
    name = spec.load_balancer_name
    price = wanted.monthly_price
    existing = find_load_balancer(state)
    if existing is None:
        item = PlanItem(
            "create", "load_balancer", name, f"{spec.region}, {wanted.summary()}", price
        )
        return LoadBalancerWork(item, None, price, price)
    region = slug(existing.get("region"))
    if region != spec.region or (vpc is not None and existing.get("vpc_uuid") != vpc.get("id")):
        raise SpecError(
            f"load balancer {name} is in region {region} / VPC {existing.get('vpc_uuid')}, "
            f"not in {spec.region} / VPC {spec.vpc_name}: DigitalOcean cannot move it. "
            "Delete it (deprovision.yml or by hand) and run again."
        )
    body = wanted.body(name, spec.project, spec.environment, spec.region, str(existing["vpc_uuid"]))
    differences = load_balancer_differences(existing, body)
    change = price - unit_price(existing)
    if differences:
        item = PlanItem("update", "load_balancer", name, ", ".join(differences), price)
    else:
        item = PlanItem("keep", "load_balancer", name, wanted.summary())
    return LoadBalancerWork(item, existing, price, change)


def apply_load_balancer(state: EnvironmentState, work: LoadBalancerWork, vpc_id: str) -> str:
    """Create or replace the load balancer as planned; return its id."""
    spec = state.spec
    wanted = spec.load_balancer
    assert wanted is not None
    body = wanted.body(spec.load_balancer_name, spec.project, spec.environment, spec.region, vpc_id)
    if work.existing is None:
        work.existing = state.client.create_load_balancer(body)
    elif work.item.action == "update":
        state.client.update_load_balancer(str(work.existing["id"]), body)
    return str(work.existing["id"])


def wait_load_balancer(state: EnvironmentState, load_balancer_id: str) -> dict[str, Any]:
    """Poll until the load balancer is active with an address; fail at the deadline."""
    spec = state.spec
    deadline = state.clock() + spec.wait_timeout
    while True:
        current = state.client.load_balancer(load_balancer_id)
        status = current.get("status")
        if status == "errored":
            raise ProvisioningError(
                f"DigitalOcean reports that load balancer {spec.load_balancer_name} errored; "
                "delete it (deprovision.yml or by hand) and run again."
            )
        if status == "active" and current.get("ip"):
            return load_balancer_info(current)
        if state.clock() >= deadline:
            raise ProvisioningTimeout(
                f"load balancer {spec.load_balancer_name} not active after "
                f"{spec.wait_timeout:g} s (status {status}). Run again: it exists and the next "
                "run waits for it instead of creating another."
            )
        state.client.settings.sleep(spec.poll_interval)


def load_balancer_line(info: dict[str, Any]) -> str:
    """One line for the operator: the address to point the site's DNS records at."""
    return (
        f"load balancer {info['name']}: {info['status']}, ip {info['ip']} "
        "(the site's DNS A record points here)"
    )
