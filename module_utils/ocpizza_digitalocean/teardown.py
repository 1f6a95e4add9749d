"""Remove an environment: its droplets, then its firewalls, VPC and selector tags.

SSH keys stay on the account: other environments may use the same keys.
"""

from __future__ import annotations

from .errors import DigitalOceanError
from .plan import PlanItem, Result
from .state import EnvironmentState

# What DigitalOcean answers while a VPC still holds droplets that are going away.
_VPC_BUSY = (403, 409, 422)


def remove_environment(state: EnvironmentState) -> Result:
    """Delete the environment's droplets, firewalls, VPC and selector tags."""
    spec, client = state.spec, state.client
    spec.validate_names()
    client.account()
    sizes = client.sizes()
    droplets = sorted(state.managed_droplets(), key=lambda d: d.name)
    firewalls = [fw for fw in client.firewalls() if spec.owns(str(fw.get("name", "")))]
    vpc = next((v for v in client.vpcs() if v.get("name") == spec.vpc_name), None)
    tags = sorted(t for t in client.tag_names() if spec.owns(t))
    plan = [
        PlanItem("delete", "droplet", d.name, f"id {d.id}", state.price(sizes, d.size_slug))
        for d in droplets
    ]
    plan += [PlanItem("delete", "firewall", fw["name"], f"id {fw['id']}") for fw in firewalls]
    if vpc is not None:
        plan.append(PlanItem("delete", "vpc", spec.vpc_name, f"id {vpc['id']}"))
    if tags:
        plan.append(PlanItem("delete", "tags", ", ".join(tags)))
    result = Result(
        changed=bool(plan),
        plan=plan,
        droplets=droplets,
        monthly_cost=0.0,
        monthly_cost_change=-sum(item.price_monthly or 0.0 for item in plan),
        warnings=state.warnings,
    )
    if state.check_mode or not plan:
        return result
    for droplet in droplets:
        client.delete_droplet(droplet.id)
    state.wait_gone([d.name for d in droplets])
    for fw in firewalls:
        client.delete_firewall(fw["id"])
    if vpc is not None:
        _delete_vpc(state, str(vpc["id"]))
    for tag in tags:
        client.delete_tag(tag)
    return result


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
