"""Remove an environment: its droplets, then its load balancer, firewalls, VPC and tags.

SSH keys stay on the account: other environments may use the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .client import DropletInfo
from .errors import DigitalOceanError
from .load_balancing import unit_price
from .plan import PlanItem, Result
from .state import EnvironmentState

# What DigitalOcean answers while a VPC still holds droplets that are going away.
_VPC_BUSY = (403, 409, 422)


@dataclass
class _Found:
    """What the environment has on the account."""

    droplets: list[DropletInfo]
    firewalls: list[dict[str, Any]]
    load_balancers: list[dict[str, Any]]
    vpc: dict[str, Any] | None
    tags: list[str]


def _find(state: EnvironmentState) -> _Found:
    spec, client = state.spec, state.client
    return _Found(
        droplets=sorted(state.managed_droplets(), key=lambda d: d.name),
        firewalls=[fw for fw in client.firewalls() if spec.owns(str(fw.get("name", "")))],
        load_balancers=[
            lb for lb in client.load_balancers() if lb.get("name") == spec.load_balancer_name
        ],
        vpc=next((v for v in client.vpcs() if v.get("name") == spec.vpc_name), None),
        tags=sorted(t for t in client.tag_names() if spec.owns(t)),
    )


def _plan(state: EnvironmentState, found: _Found) -> list[PlanItem]:
    sizes = state.client.sizes()
    plan = [
        PlanItem("delete", "droplet", d.name, f"id {d.id}", state.price(sizes, d.size_slug))
        for d in found.droplets
    ]
    plan += [
        PlanItem("delete", "load_balancer", lb["name"], f"id {lb['id']}", unit_price(lb))
        for lb in found.load_balancers
    ]
    plan += [PlanItem("delete", "firewall", fw["name"], f"id {fw['id']}") for fw in found.firewalls]
    if found.vpc is not None:
        plan.append(PlanItem("delete", "vpc", state.spec.vpc_name, f"id {found.vpc['id']}"))
    if found.tags:
        plan.append(PlanItem("delete", "tags", ", ".join(found.tags)))
    return plan


def remove_environment(state: EnvironmentState) -> Result:
    """Delete the environment's droplets, load balancer, firewalls, VPC and selector tags."""
    state.spec.validate_names()
    state.client.account()
    found = _find(state)
    plan = _plan(state, found)
    result = Result(
        changed=bool(plan),
        plan=plan,
        droplets=found.droplets,
        monthly_cost=0.0,
        monthly_cost_change=-sum(item.price_monthly or 0.0 for item in plan),
        warnings=state.warnings,
    )
    if not state.check_mode and plan:
        _delete(state, found)
    return result


def _delete(state: EnvironmentState, found: _Found) -> None:
    """Droplets first (the VPC cannot go while they are in it), then the rest."""
    client = state.client
    for droplet in found.droplets:
        client.delete_droplet(droplet.id)
    state.wait_gone([d.name for d in found.droplets])
    for lb in found.load_balancers:
        client.delete_load_balancer(str(lb["id"]))
    for fw in found.firewalls:
        client.delete_firewall(fw["id"])
    if found.vpc is not None:
        _delete_vpc(state, str(found.vpc["id"]))
    for tag in found.tags:
        client.delete_tag(tag)


def _delete_vpc(state: EnvironmentState, vpc_id: str) -> None:
    """Delete the VPC, retrying while DigitalOcean still counts the deleted droplets in it."""
    deadline = state.clock() + state.spec.wait_timeout
    while True:
        try:
            state.client.delete_vpc(vpc_id)
            return
        except DigitalOceanError as exc:
            if exc.status not in _VPC_BUSY or state.clock() >= deadline:
                raise
        state.client.settings.sleep(state.spec.poll_interval)
