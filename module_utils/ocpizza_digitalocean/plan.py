"""The plan of a run: one item per resource, its text, and what it costs a month."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .client import DropletInfo

CHANGES = ("create", "update", "delete")


@dataclass
class PlanItem:
    """One step of the plan: what happens (or would happen) to one resource."""

    action: str  # create, update, delete, wait or keep
    kind: str  # droplet, vpc, firewall, load_balancer, ssh_key or tags
    name: str
    detail: str = ""
    price_monthly: float | None = None

    @property
    def is_change(self) -> bool:
        """True for the actions that modify the account."""
        return self.action in CHANGES

    def line(self) -> str:
        """One human-readable line."""
        text = f"{self.action} {self.kind} {self.name}"
        if self.detail:
            text += f" ({self.detail})"
        if self.price_monthly is not None:
            text += f": ${self.price_monthly:,.2f}/month"
        return text


@dataclass
class Result:
    """What the module returns."""

    changed: bool
    plan: list[PlanItem]
    droplets: list[DropletInfo] = field(default_factory=list)
    vpc: dict[str, Any] | None = None
    firewalls: list[dict[str, Any]] = field(default_factory=list)
    load_balancer: dict[str, Any] | None = None
    load_balancer_lines: list[str] = field(default_factory=list)
    ssh_key_ids: list[int] = field(default_factory=list)
    monthly_cost: float = 0.0
    monthly_cost_change: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def plan_lines(self) -> list[str]:
        """The plan as text: changes first, then a line for what stays, then the cost."""
        lines = [item.line() for item in self.plan if item.action != "keep"]
        kept = [item for item in self.plan if item.action == "keep"]
        if kept:
            lines.append(f"unchanged: {len(kept)} resources")
        if not any(item.is_change for item in self.plan):
            lines.insert(0, "nothing to change")
        sign = "+" if self.monthly_cost_change >= 0 else "-"
        lines.append(
            f"monthly cost: ${self.monthly_cost:,.2f} "
            f"({sign}${abs(self.monthly_cost_change):,.2f}/month from this run)"
        )
        return lines

    def droplet_names(self, action: str) -> list[str]:
        """Names of the droplets the plan creates (or deletes)."""
        return [i.name for i in self.plan if i.kind == "droplet" and i.action == action]

    def as_dict(self) -> dict[str, Any]:
        """Module return values."""
        return {
            "changed": self.changed,
            "plan": [asdict(item) for item in self.plan],
            "plan_lines": self.plan_lines(),
            "droplets": [d.as_dict() for d in self.droplets],
            "droplet_lines": [d.line() for d in self.droplets],
            "vpc": self.vpc,
            "firewalls": self.firewalls,
            "load_balancer": self.load_balancer,
            "load_balancer_lines": self.load_balancer_lines,
            "ssh_key_ids": self.ssh_key_ids,
            "monthly_cost": round(self.monthly_cost, 2),
            "monthly_cost_change": round(self.monthly_cost_change, 2),
            "created": self.droplet_names("create"),
            "deleted": self.droplet_names("delete"),
        }


def summary(state: str, plan_lines: list[str], check_mode: bool) -> str:
    """One sentence for the operator."""
    verb = "would" if check_mode else "did"
    changes = [line for line in plan_lines if line.split(" ", 1)[0] in CHANGES]
    if not changes:
        return f"environment is already {state}; nothing to do"
    return f"{len(changes)} changes ({verb} apply): " + "; ".join(changes)
