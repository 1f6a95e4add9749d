"""Make an environment exist: read what is there, plan, create only what is missing.

python-digitalocean creates a second droplet when asked twice; the reconciler
identifies every resource by name and tags, reads what exists first, and
creates only what is missing, so a rerun after an interrupted run finishes the
job. It then polls until every droplet is active, with a deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .client import DropletInfo, slug
from .errors import DigitalOceanError, ProvisioningError, SpecError
from .firewall import allows_all_outbound, desired_firewall, firewall_differences
from .load_balancing import (
    LoadBalancerWork,
    apply_load_balancer,
    load_balancer_line,
    plan_load_balancer,
    wait_load_balancer,
)
from .loadbalancer import load_balancer_info
from .plan import PlanItem, Result
from .spec import GroupSpec, SSHKeySpec, ssh_fingerprint
from .state import EnvironmentState
from .teardown import remove_environment


@dataclass
class _Work:
    """The plan of :meth:`EnvironmentReconciler.present` and what carrying it out needs."""

    plan: list[PlanItem] = field(default_factory=list)
    tags_missing: list[str] = field(default_factory=list)
    vpc: dict[str, Any] | None = None
    account_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys_missing: list[SSHKeySpec] = field(default_factory=list)
    firewalls: list[tuple[PlanItem, dict[str, Any], dict[str, Any] | None]] = field(
        default_factory=list
    )
    retags: list[tuple[DropletInfo, list[str]]] = field(default_factory=list)
    creates: list[tuple[str, GroupSpec]] = field(default_factory=list)
    wanted: list[str] = field(default_factory=list)
    existing: list[DropletInfo] = field(default_factory=list)
    load_balancer: LoadBalancerWork | None = None
    cost: float = 0.0
    change: float = 0.0

    def add(self, item: PlanItem) -> PlanItem:
        self.plan.append(item)
        return item


class EnvironmentReconciler(EnvironmentState):
    """Make an environment's resources match its spec, creating only what is missing."""

    def absent(self) -> Result:
        """Delete the environment's droplets, load balancer, firewalls, VPC and selector tags."""
        return remove_environment(self)

    def check_catalog(self) -> dict[str, dict[str, Any]]:
        """Check region, sizes and images before anything is created; return the sizes."""
        spec = self.spec
        sizes = self.client.sizes()
        regions = self.client.regions()
        problems: list[str] = []
        region = regions.get(spec.region)
        if region is None or not region.get("available", True):
            known = ", ".join(sorted(s for s, r in regions.items() if r.get("available", True)))
            problems.append(f"unknown or unavailable region {spec.region!r} (available: {known})")
        for group in spec.groups:
            size = sizes.get(group.size)
            if size is None or not size.get("available", True):
                problems.append(f"unknown size {group.size!r} for group {group.name}")
            elif region is not None and spec.region not in (size.get("regions") or []):
                problems.append(
                    f"size {group.size!r} for group {group.name} is not offered in {spec.region}"
                )
        problems += self._image_problems()
        if problems:
            raise SpecError("DigitalOcean does not offer what was asked: " + "; ".join(problems))
        return sizes

    def _image_problems(self) -> list[str]:
        """One problem per unknown image, naming the groups that ask for it."""
        users: dict[str, list[str]] = {}
        for group in self.spec.groups:
            users.setdefault(group.image, []).append(group.name)
        return [
            f"unknown image {image!r} for {', '.join(groups)}"
            for image, groups in users.items()
            if self.client.image(image) is None
        ]

    # -- present: plan ------------------------------------------------------

    def present(self) -> Result:
        """Ensure every resource of the environment exists; wait for the droplets."""
        self.spec.validate()
        self.client.account()  # a clear 401 before anything else
        sizes = self.check_catalog()
        work = _Work(existing=self.managed_droplets())
        self._plan_tags(work)
        self._plan_vpc(work)
        self._plan_ssh_keys(work)
        self._plan_load_balancer(work)
        self._plan_firewalls(work)
        self._plan_droplets(work, sizes)
        result = Result(
            changed=any(item.is_change for item in work.plan),
            plan=work.plan,
            monthly_cost=work.cost,
            monthly_cost_change=work.change,
            warnings=self.warnings,
        )
        if self.check_mode:
            result.droplets = list(self.by_name(work.existing).values())
            result.vpc = work.vpc
            if work.load_balancer is not None and work.load_balancer.existing is not None:
                result.load_balancer = load_balancer_info(work.load_balancer.existing)
            return result
        self._apply(work, result)
        return result

    def _plan_tags(self, work: _Work) -> None:
        names = self.client.tag_names()
        work.tags_missing = [t for t in self.spec.all_tags() if t not in names]
        if work.tags_missing:
            work.add(PlanItem("create", "tags", ", ".join(work.tags_missing)))

    def _plan_vpc(self, work: _Work) -> None:
        spec = self.spec
        work.vpc = next((v for v in self.client.vpcs() if v.get("name") == spec.vpc_name), None)
        if work.vpc is None:
            detail = spec.region + (f", {spec.vpc_ip_range}" if spec.vpc_ip_range else "")
            work.add(PlanItem("create", "vpc", spec.vpc_name, detail))
        elif slug(work.vpc.get("region")) != spec.region:
            raise SpecError(
                f"VPC {spec.vpc_name} exists in region {slug(work.vpc.get('region'))}, "
                f"not {spec.region}: droplets and their VPC must share a region"
            )
        else:
            work.add(PlanItem("keep", "vpc", spec.vpc_name, str(work.vpc.get("ip_range", ""))))

    def _plan_ssh_keys(self, work: _Work) -> None:
        work.account_keys = {
            (k.get("fingerprint") or ssh_fingerprint(k["public_key"])): k
            for k in self.client.ssh_keys()
            if k.get("fingerprint") or k.get("public_key")
        }
        for key in self.spec.ssh_keys:
            missing = key.fingerprint not in work.account_keys
            if missing:
                work.keys_missing.append(key)
            work.add(
                PlanItem("create" if missing else "keep", "ssh_key", key.name, key.fingerprint)
            )

    def _plan_load_balancer(self, work: _Work) -> None:
        if self.spec.load_balancer is None:
            return
        work.load_balancer = plan_load_balancer(self, work.vpc)
        work.add(work.load_balancer.item)
        work.cost += work.load_balancer.price
        work.change += work.load_balancer.change

    def _plan_firewalls(self, work: _Work) -> None:
        by_name: dict[str, list[dict[str, Any]]] = {}
        for fw in self.client.firewalls():
            by_name.setdefault(fw.get("name", ""), []).append(fw)
        load_balancer_id = work.load_balancer.id if work.load_balancer else None
        for group in self.spec.groups:
            body = desired_firewall(self.spec, group, load_balancer_id)
            found = by_name.get(body["name"], [])
            if len(found) > 1:
                raise ProvisioningError(
                    f"Several cloud firewalls are named {body['name']}; delete the extra ones."
                )
            existing = found[0] if found else None
            work.firewalls.append((work.add(self._firewall_item(body, existing)), body, existing))

    @staticmethod
    def _firewall_item(body: dict[str, Any], existing: dict[str, Any] | None) -> PlanItem:
        outbound = (
            "all outbound allowed"
            if allows_all_outbound(body)
            else f"{len(body['outbound_rules'])} outbound rules"
        )
        rules = f"{len(body['inbound_rules'])} inbound rules, {outbound}"
        if existing is None:
            return PlanItem("create", "firewall", body["name"], rules)
        differences = firewall_differences(existing, body)
        if differences:
            return PlanItem("update", "firewall", body["name"], ", ".join(differences))
        return PlanItem("keep", "firewall", body["name"], rules)

    def _plan_droplets(self, work: _Work, sizes: dict[str, dict[str, Any]]) -> None:
        existing = self.by_name(work.existing)
        for group, name in self.spec.desired_droplets():
            work.wanted.append(name)
            price = self.price(sizes, group.size)
            work.cost += price
            droplet = existing.get(name)
            if droplet is None:
                detail = f"{group.name}, {group.size}, {group.image}, {self.spec.region}"
                work.add(PlanItem("create", "droplet", name, detail, price))
                work.change += price
                work.creates.append((name, group))
            else:
                work.add(self._existing_droplet_item(work, droplet, group))
        for name, droplet in sorted(existing.items()):
            if name not in work.wanted:
                self.warnings.append(
                    f"droplet {name} (id {droplet.id}) is tagged for environment "
                    f"{self.spec.environment} but not in its spec; it was left alone"
                )
                work.cost += self.price(sizes, droplet.size_slug)

    def _existing_droplet_item(
        self, work: _Work, droplet: DropletInfo, group: GroupSpec
    ) -> PlanItem:
        self._drift_warnings(droplet, group)
        missing = [t for t in self.spec.droplet_tags(group) if t not in droplet.tags]
        if missing:
            work.retags.append((droplet, missing))
            return PlanItem("update", "droplet", droplet.name, "add tags " + ", ".join(missing))
        if droplet.status != "active":
            return PlanItem("wait", "droplet", droplet.name, f"status {droplet.status}")
        return PlanItem("keep", "droplet", droplet.name, f"{group.name}, {droplet.size_slug}")

    def _drift_warnings(self, droplet: DropletInfo, group: GroupSpec) -> None:
        spec = self.spec
        if droplet.size_slug and droplet.size_slug != group.size:
            self.warnings.append(
                f"droplet {droplet.name} has size {droplet.size_slug}, the spec says "
                f"{group.size}; resize it by hand (it needs a power-off)"
            )
        if droplet.region and droplet.region != spec.region:
            self.warnings.append(
                f"droplet {droplet.name} is in {droplet.region}, the spec says {spec.region}"
            )

    # -- present: apply -----------------------------------------------------

    def _apply(self, work: _Work, result: Result) -> None:
        """Carry the plan out: what droplets need first, then the droplets, then wait."""
        spec, client = self.spec, self.client
        vpc = self._apply_shared(work, result)
        load_balancer_id = None
        if work.load_balancer is not None:
            created = work.load_balancer.existing is None
            load_balancer_id = apply_load_balancer(self, work.load_balancer, str(vpc["id"]))
            if created:  # the firewalls that admit it need its id, known only now
                jobs = zip(spec.groups, work.firewalls, strict=True)
                work.firewalls = [
                    (item, desired_firewall(spec, group, load_balancer_id), existing)
                    for group, (item, _body, existing) in jobs
                ]
        # Firewalls first, so that new droplets boot already behind them.
        result.firewalls = [self._apply_firewall(*job) for job in work.firewalls]
        for droplet, missing in work.retags:
            for tag in missing:
                client.tag_droplets(tag, [droplet.id])
        actions: dict[str, int] = {}
        for name, group in work.creates:
            action_id = self._create_droplet(name, group, str(vpc["id"]), result.ssh_key_ids)
            if action_id is not None:
                actions[name] = action_id
        result.vpc = {k: vpc.get(k) for k in ("id", "name", "region", "ip_range")}
        result.vpc["region"] = slug(result.vpc["region"])
        if spec.wait:
            result.droplets = self.wait_active(sorted(work.wanted), actions)
        else:
            result.droplets = [d for d in self.managed_droplets() if d.name in work.wanted]
        result.droplets.sort(key=lambda d: d.name)
        if load_balancer_id is not None:
            self._load_balancer_result(load_balancer_id, result)

    def _load_balancer_result(self, load_balancer_id: str, result: Result) -> None:
        if self.spec.wait:
            result.load_balancer = wait_load_balancer(self, load_balancer_id)
        else:
            result.load_balancer = load_balancer_info(self.client.load_balancer(load_balancer_id))
        result.load_balancer_lines = [load_balancer_line(result.load_balancer)]

    def _apply_shared(self, work: _Work, result: Result) -> dict[str, Any]:
        """Create the missing tags, VPC and SSH keys; return the VPC."""
        spec, client = self.spec, self.client
        for tag in work.tags_missing:
            client.create_tag(tag)
        vpc = work.vpc or client.create_vpc(
            spec.vpc_name, spec.region, spec.vpc_ip_range, spec.vpc_description
        )
        for key in work.keys_missing:
            key_id = client.create_ssh_key(key.name, key.public_key)
            work.account_keys[key.fingerprint] = {"id": key_id, "name": key.name}
        result.ssh_key_ids = [int(work.account_keys[k.fingerprint]["id"]) for k in spec.ssh_keys]
        return vpc

    def _apply_firewall(
        self, item: PlanItem, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        if existing is None:
            return self.client.create_firewall(body)
        if item.action == "update":
            self.client.update_firewall(existing["id"], body)
        return {"id": existing["id"], "name": body["name"]}

    def _create_droplet(
        self, name: str, group: GroupSpec, vpc_id: str, ssh_key_ids: list[int]
    ) -> int | None:
        """Create one droplet and return its action id (None: it was adopted)."""
        spec = self.spec
        try:
            _droplet_id, action_id = self.client.create_droplet(
                name=name,
                region=spec.region,
                size=group.size,
                image=group.image,
                vpc_uuid=vpc_id,
                ssh_key_ids=ssh_key_ids,
                tags=spec.droplet_tags(group),
                monitoring=spec.monitoring,
                ipv6=spec.ipv6,
                backups=spec.backups,
                user_data=spec.user_data,
            )
        except DigitalOceanError as exc:
            return self._after_create_failed(name, group, exc)
        return action_id

    def _after_create_failed(self, name: str, group: GroupSpec, exc: DigitalOceanError) -> None:
        """Adopt a droplet created without an answer; otherwise raise a clear error."""
        if exc.status is None:
            # No answer: the droplet may exist all the same. Look before failing.
            if any(d.name == name for d in self.managed_droplets()):
                return None
            raise ProvisioningError(
                f"Creating droplet {name} got no answer ({exc.api_message}) and it is not "
                "listed yet. Run again: the next run adopts the droplet if DigitalOcean "
                "created it after all, and creates it otherwise."
            ) from exc
        if exc.status == 422:
            raise SpecError(
                f"DigitalOcean refused to create droplet {name} (HTTP 422 "
                f"{exc.error_id or 'unprocessable_entity'}: {exc.api_message}) with "
                f"size={group.size}, image={group.image}, region={self.spec.region}"
            ) from exc
        raise exc
