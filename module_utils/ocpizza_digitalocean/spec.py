"""What an environment should look like, and the checks made before any API call."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

from .errors import SpecError
from .firewall import EVERY_GROUP, EgressRule, FirewallRule
from .loadbalancer import LoadBalancerSpec
from .naming import (
    GROUP_PATTERN,
    NAME_PATTERN,
    PREFIX_PATTERN,
    TAG_PATTERN,
    environment_tag,
    group_tag,
    selector_tag,
)


def ssh_fingerprint(public_key: str) -> str:
    """Return the MD5 fingerprint DigitalOcean shows for an OpenSSH public key."""
    parts = public_key.strip().split()
    if len(parts) < 2:
        raise SpecError("an SSH public key must look like 'ssh-ed25519 AAAA... comment'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SpecError(f"the SSH public key {parts[0]} {parts[1][:12]}... is not base64") from exc
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@dataclass
class GroupSpec:
    """The droplets of one inventory group."""

    name: str
    hostname_prefix: str
    size: str
    image: str
    count: int = 1
    firewall_inbound: list[FirewallRule] = field(default_factory=list)
    # The outbound policy; None (no policy given) allows every outbound connection.
    firewall_outbound: list[EgressRule] | None = None

    def droplet_names(self, project: str, environment: str) -> list[str]:
        """Names of this group's droplets, ``<project>-<env>-<prefix><n>``."""
        return [
            f"{project}-{environment}-{self.hostname_prefix}{n}" for n in range(1, self.count + 1)
        ]

    def problems(self, known_groups: list[str]) -> list[str]:
        """What is wrong with this group, in words (empty when nothing is)."""
        problems = []
        if not GROUP_PATTERN.match(self.name):
            problems.append(f"group name {self.name!r} is not a valid inventory group name")
        if not PREFIX_PATTERN.match(self.hostname_prefix):
            problems.append(
                f"group {self.name}: hostname_prefix {self.hostname_prefix!r} must be "
                "lower-case letters, digits or dashes"
            )
        if self.count < 0:
            problems.append(f"group {self.name}: count must be 0 or more")
        if not self.size or not self.image:
            problems.append(f"group {self.name}: size and image are required")
        problems.extend(
            f"group {self.name}: a firewall rule names the unknown group "
            f"{other!r} (known: {', '.join(known_groups)})"
            for rule in self.firewall_inbound
            for other in rule.groups
            if other not in known_groups
        )
        problems.extend(
            f"group {self.name}: firewall_egress entry {rule.name!r} goes to the unknown "
            f"group {other!r} (known: {', '.join(known_groups)}, or {EVERY_GROUP})"
            for rule in self.firewall_outbound or []
            for other in rule.groups
            if other != EVERY_GROUP and other not in known_groups
        )
        return problems


@dataclass
class SSHKeySpec:
    """A public key to install on every droplet."""

    name: str
    public_key: str

    @property
    def fingerprint(self) -> str:
        """The key's MD5 fingerprint, as DigitalOcean reports it."""
        return ssh_fingerprint(self.public_key)


@dataclass
class EnvironmentSpec:
    """Everything the module is asked to make exist (or make absent)."""

    project: str
    environment: str
    region: str
    groups: list[GroupSpec]
    vpc_name: str = ""
    vpc_ip_range: str | None = None
    vpc_description: str = ""
    ssh_keys: list[SSHKeySpec] = field(default_factory=list)
    extra_tags: list[str] = field(default_factory=list)
    monitoring: bool = True
    ipv6: bool = False
    backups: bool = False
    user_data: str | None = None
    wait: bool = True
    wait_timeout: float = 600.0
    poll_interval: float = 5.0
    load_balancer: LoadBalancerSpec | None = None

    def __post_init__(self) -> None:
        if not self.vpc_name:
            self.vpc_name = f"{self.project}-{self.environment}"

    # -- derived names ------------------------------------------------------

    @property
    def environment_tag(self) -> str:
        """``env:<environment>``."""
        return environment_tag(self.environment)

    @property
    def name_prefix(self) -> str:
        """Prefix of every droplet and firewall name of the environment."""
        return f"{self.project}-{self.environment}-"

    def owns(self, name: str) -> bool:
        """True for ``<project>-<environment>-<group>``, the names of this environment's
        firewalls and selector tags, and not for those of an environment whose name
        merely starts the same (``staging-eu``): group names have no dash."""
        return name.startswith(self.name_prefix) and bool(
            GROUP_PATTERN.match(name[len(self.name_prefix) :])
        )

    def firewall_name(self, group: str) -> str:
        """Name of a group's cloud firewall."""
        return f"{self.project}-{self.environment}-{group}"

    @property
    def load_balancer_name(self) -> str:
        """Name of the environment's load balancer, ``<project>-<environment>-lb``."""
        return f"{self.project}-{self.environment}-lb"

    def droplet_tags(self, group: GroupSpec) -> list[str]:
        """Every tag a droplet of ``group`` carries."""
        tags = [
            self.project,
            self.environment_tag,
            group_tag(group.name),
            selector_tag(self.project, self.environment, group.name),
            *self.extra_tags,
        ]
        return list(dict.fromkeys(tags))

    def all_tags(self) -> list[str]:
        """Every tag the environment uses."""
        return list(dict.fromkeys(tag for g in self.groups for tag in self.droplet_tags(g)))

    def desired_droplets(self) -> list[tuple[GroupSpec, str]]:
        """Every droplet the environment should have, as (group, name)."""
        return [
            (group, name)
            for group in self.groups
            for name in group.droplet_names(self.project, self.environment)
        ]

    # -- validation ---------------------------------------------------------

    def _name_problems(self) -> list[str]:
        return [
            f"{label} {value!r} must be 1-20 lower-case letters, digits or dashes, "
            "starting with a letter"
            for label, value in (("project", self.project), ("environment", self.environment))
            if not NAME_PATTERN.match(value or "")
        ]

    def _groups_problems(self) -> list[str]:
        if not self.groups:
            return ["groups is empty: nothing to provision"]
        names = [g.name for g in self.groups]
        prefixes = [g.hostname_prefix for g in self.groups]
        problems = []
        if len(set(names)) != len(names):
            problems.append(f"groups are listed twice: {names}")
        if len(set(prefixes)) != len(prefixes):
            problems.append(f"hostname prefixes must differ between groups: {prefixes}")
        for group in self.groups:
            problems.extend(group.problems(names))
        return problems

    def _other_problems(self) -> list[str]:
        problems = [
            f"tag {tag!r} may hold only letters, digits, ':', '-' and '_'"
            for tag in self.extra_tags
            if not TAG_PATTERN.match(tag)
        ]
        for key in self.ssh_keys:
            try:
                ssh_fingerprint(key.public_key)
            except SpecError as exc:
                problems.append(f"ssh key {key.name}: {exc}")
        if self.load_balancer is not None:
            problems += self.load_balancer.problems([g.name for g in self.groups])
        if self.wait_timeout <= 0 or self.poll_interval <= 0:
            problems.append("wait_timeout and poll_interval must be positive")
        return problems

    def validate_names(self) -> None:
        """Refuse a project or environment name that would make invalid resource names."""
        problems = self._name_problems()
        if problems:
            raise SpecError("; ".join(problems))

    def validate(self) -> None:
        """Refuse names and values that would make invalid resources."""
        problems = self._name_problems()
        if not self.region:
            problems.append("region is empty")
        problems += self._groups_problems() + self._other_problems()
        if problems:
            raise SpecError("; ".join(problems))
