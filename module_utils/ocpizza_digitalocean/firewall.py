"""Cloud firewalls: rules, the API body of a group's firewall, and its comparison.

The firewall policy of each inventory group is written once, as the
``firewall_allowed`` list of ``group_vars/<group>/firewall.yml`` that role
``firewall`` turns into nftables rules on the host. :func:`rules_from_policy`
turns the same list into the group's DigitalOcean cloud firewall rules, so the
two firewalls cannot disagree: a rule ``from_group: appservers`` becomes the
private addresses of the app servers in nftables and the app servers' selector
tag in the cloud firewall; ``sources`` (addresses, CIDRs or ``any``) are the
same addresses in both. A rule ``from_load_balancer: true`` becomes the
environment's load balancer (``load_balancer_uids``) when the environment has
one, and anyone otherwise (nftables: ``ocpizza_load_balancer_sources``, or
anyone when that is empty).

The same file's outbound policy (role ``firewall``'s output chain:
``firewall_egress_common`` + ``firewall_egress`` + ``firewall_egress_extra``)
becomes the group's outbound cloud rules through :func:`egress_rules_from_policy`:
``to_group: <group>`` is that group's selector tag, ``to_group: all`` every
group's tag of the environment, ``destinations`` the addresses (``any``:
``0.0.0.0/0`` and ``::/0``). ICMP may go anywhere (the host lets the ICMP
errors out; a cloud firewall cannot tell ICMP types apart), and replies to
inbound connections need no rule: cloud firewalls are stateful. A group given
no outbound policy (``None``: ``firewall_egress_enabled`` false) keeps
:data:`ALLOW_ALL_OUTBOUND`.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .naming import selector_tag

if TYPE_CHECKING:
    from .spec import EnvironmentSpec, GroupSpec

PORTS_PATTERN = re.compile(r"^(all|\d{1,5}(-\d{1,5})?)$")
PROTOCOLS = ("tcp", "udp", "icmp")
# What ``any`` means as a source: every IPv4 and IPv6 address.
ANYWHERE = ("0.0.0.0/0", "::/0")

# What a droplet of a group without an outbound policy may send: everything.
ALLOW_ALL_OUTBOUND: tuple[dict[str, Any], ...] = tuple(
    {
        "protocol": protocol,
        "ports": "all" if protocol != "icmp" else "",
        "destinations": {"addresses": list(ANYWHERE)},
    }
    for protocol in PROTOCOLS
)


def _as_list(value: Any) -> list[Any]:
    """A list from a list, a single value, or nothing."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _check_addresses(addresses: Iterable[str], where: str) -> None:
    for address in addresses:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError as exc:
            raise SpecError(f"{where}: {address!r} is not an address or CIDR") from exc


@dataclass(frozen=True)
class FirewallRule:
    """One inbound rule: a protocol and ports, from addresses, groups or the load balancer."""

    protocol: str
    ports: str
    addresses: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    load_balancer: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> FirewallRule:
        """Build a rule from ``{protocol, ports, sources: {addresses, groups}}``."""
        protocol = str(data.get("protocol", "tcp")).lower()
        if protocol not in PROTOCOLS:
            raise SpecError(f"{where}: protocol must be one of {', '.join(PROTOCOLS)}")
        ports = "" if protocol == "icmp" else str(data.get("ports", "")).strip()
        if protocol != "icmp" and not PORTS_PATTERN.match(ports):
            raise SpecError(f"{where}: ports must be a port, a range like 8000-8010, or all")
        sources = data.get("sources") or {}
        addresses = tuple(str(a) for a in _as_list(sources.get("addresses")))
        groups = tuple(str(g) for g in _as_list(sources.get("groups")))
        _check_addresses(addresses, where)
        if not addresses and not groups:
            raise SpecError(f"{where}: sources needs addresses and/or groups")
        return cls(protocol, ports, addresses, groups)


def rule_from_policy(
    entry: Mapping[str, Any], where: str, has_load_balancer: bool = False
) -> FirewallRule | None:
    """The cloud rule of one ``firewall_allowed`` entry (None: it opens nothing).

    ``{name, port, proto, from_group}`` allows the droplets of that group (by
    tag); ``{name, port, proto, sources}`` allows those addresses, ``any`` (or
    no ``sources``) meaning everyone. An empty ``sources`` opens nothing, as in
    nftables. ``{name, port, proto, from_load_balancer: true}`` allows the
    environment's load balancer when ``has_load_balancer``, anyone otherwise.
    """
    where = f"{where} ({entry.get('name', 'unnamed')})"
    given = [
        key
        for key, present in (
            ("from_group", bool(entry.get("from_group"))),
            ("sources", entry.get("sources") is not None),
            ("from_load_balancer", bool(entry.get("from_load_balancer"))),
        )
        if present
    ]
    if len(given) > 1:
        raise SpecError(
            f"{where}: {' and '.join(given)} given; give one of from_group, sources or "
            "from_load_balancer, not both"
        )
    sources: dict[str, Any] = {"groups": _as_list(entry.get("from_group"))}
    if entry.get("from_load_balancer") and has_load_balancer:
        data = {"protocol": entry.get("proto", "tcp"), "ports": entry.get("port")}
        base = FirewallRule.from_dict({**data, "sources": {"addresses": list(ANYWHERE)}}, where)
        return FirewallRule(base.protocol, base.ports, load_balancer=True)
    if not sources["groups"]:
        given = entry.get("sources")
        addresses = ["any"] if given is None else [str(a) for a in _as_list(given)]
        if not addresses:
            return None
        sources["addresses"] = list(ANYWHERE) if "any" in addresses else addresses
    data = {"protocol": entry.get("proto", "tcp"), "ports": entry.get("port"), "sources": sources}
    rule = FirewallRule.from_dict(data, where)
    if rule.protocol == "icmp":
        raise SpecError(f"{where}: proto must be tcp or udp")
    return rule


def rules_from_policy(
    allowed: Iterable[Mapping[str, Any]],
    ssh_sources: Iterable[str] = (),
    ssh_port: int = 22,
    where: str = "firewall_allowed",
    has_load_balancer: bool = False,
) -> list[FirewallRule]:
    """The cloud rules of a group's host firewall policy, SSH from ``ssh_sources`` first.

    ``has_load_balancer``: the environment has a load balancer, which the
    entries ``from_load_balancer: true`` then admit (anyone otherwise).
    """
    rules: list[FirewallRule] = []
    ssh = [str(a) for a in ssh_sources]
    if ssh:
        _check_addresses(ssh, "ssh_sources")
        rules.append(FirewallRule("tcp", str(ssh_port), tuple(ssh)))
    for index, entry in enumerate(allowed):
        rule = rule_from_policy(entry, f"{where} entry {index + 1}", has_load_balancer)
        if rule is not None:
            rules.append(rule)
    return rules


# The ``to_group`` that names every group of the environment.
EVERY_GROUP = "all"

# ICMP outbound, whatever the policy: the host's output chain lets out the
# ICMP a network needs (errors, packet-too-big, IPv6 neighbour discovery),
# and a cloud firewall rule cannot tell ICMP types apart.
ICMP_OUTBOUND: dict[str, Any] = {
    "protocol": "icmp",
    "ports": "",
    "destinations": {"addresses": list(ANYWHERE)},
}


@dataclass(frozen=True)
class EgressRule:
    """One outbound rule: a protocol and a port, to addresses and/or groups (``all``: every one).

    ``name`` (the policy entry's) is for messages only: two rules that differ
    by name alone are the same rule.
    """

    protocol: str
    ports: str
    addresses: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    name: str = field(default="", compare=False)


def _egress_port(value: Any, where: str) -> str:
    text = str(value if value is not None else "").strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise SpecError(f"{where}: port must be a port number (1-65535), got {value!r}")
    return str(int(text))


def egress_rule_from_policy(entry: Mapping[str, Any], where: str) -> EgressRule | None:
    """The outbound cloud rule of one ``firewall_egress`` entry (None: it opens nothing).

    ``{name, port, proto, to_group}`` allows that group's droplets (by tag;
    ``all``: every group's); ``{name, port, proto, destinations}`` those
    addresses or CIDRs, ``any`` meaning everywhere. An empty ``destinations``
    opens nothing, as in nftables. One of the two is required: an entry
    without either would mean "anywhere" by omission, which the host
    firewall refuses too.
    """
    name = str(entry.get("name") or "unnamed")
    where = f"{where} ({name})"
    to_group = str(entry.get("to_group") or "").strip()
    destinations = entry.get("destinations")
    if to_group and destinations is not None:
        raise SpecError(f"{where}: to_group and destinations given; give one of them, not both")
    if not to_group and destinations is None:
        raise SpecError(f"{where}: give to_group (an inventory group, or all) or destinations")
    protocol = str(entry.get("proto") or "tcp").lower()
    if protocol not in ("tcp", "udp"):
        raise SpecError(f"{where}: proto must be tcp or udp, got {protocol!r}")
    ports = _egress_port(entry.get("port"), where)
    if to_group:
        return EgressRule(protocol, ports, groups=(to_group,), name=name)
    addresses = [str(a).strip() for a in _as_list(destinations)]
    if not addresses:
        return None
    if "any" in addresses:
        return EgressRule(protocol, ports, ANYWHERE, name=name)
    _check_addresses(addresses, where)
    return EgressRule(protocol, ports, tuple(addresses), name=name)


def egress_rules_from_policy(
    entries: Iterable[Mapping[str, Any]], where: str = "firewall_egress"
) -> list[EgressRule]:
    """The outbound cloud rules of a group's outbound policy, in its order."""
    rules = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise SpecError(f"{where} entry {index + 1}: expected a mapping, got {entry!r}")
        rule = egress_rule_from_policy(entry, f"{where} entry {index + 1}")
        if rule is not None:
            rules.append(rule)
    return rules


# Stands for the id of a load balancer that is still to be created, in a plan.
NEW_LOAD_BALANCER = "(new load balancer)"


def _sources(
    spec: EnvironmentSpec, rule: FirewallRule, load_balancer_id: str | None
) -> dict[str, Any]:
    sources: dict[str, Any] = {
        "addresses": list(rule.addresses),
        "tags": [selector_tag(spec.project, spec.environment, g) for g in rule.groups],
    }
    if rule.load_balancer:
        sources["load_balancer_uids"] = [load_balancer_id or NEW_LOAD_BALANCER]
    return sources


def _destination_tags(spec: EnvironmentSpec, rule: EgressRule) -> list[str]:
    """The selector tags of a rule's groups, ``all`` being every group of the environment."""
    groups: list[str] = []
    for name in rule.groups:
        groups += [g.name for g in spec.groups] if name == EVERY_GROUP else [name]
    return [selector_tag(spec.project, spec.environment, g) for g in dict.fromkeys(groups)]


def desired_outbound(spec: EnvironmentSpec, group: GroupSpec) -> list[dict[str, Any]]:
    """A group's outbound rules: its policy and ICMP, or everything without a policy.

    Rules that come out the same (several flows to ``any`` on 443) are sent once.
    """
    if group.firewall_outbound is None:
        return [dict(rule) for rule in ALLOW_ALL_OUTBOUND]
    rules: list[dict[str, Any]] = []
    for rule in group.firewall_outbound:
        body = {
            "protocol": rule.protocol,
            "ports": rule.ports,
            "destinations": {
                "addresses": list(rule.addresses),
                "tags": _destination_tags(spec, rule),
            },
        }
        if body not in rules:
            rules.append(body)
    return [*rules, copy.deepcopy(ICMP_OUTBOUND)]


def allows_all_outbound(body: Mapping[str, Any]) -> bool:
    """True when a firewall body's outbound rules are :data:`ALLOW_ALL_OUTBOUND`."""
    return _normal_rules(body.get("outbound_rules") or [], "destinations") == _normal_rules(
        ALLOW_ALL_OUTBOUND, "destinations"
    )


def desired_firewall(
    spec: EnvironmentSpec, group: GroupSpec, load_balancer_id: str | None = None
) -> dict[str, Any]:
    """Return the API body of a group's cloud firewall (``load_balancer_id``: the
    environment's load balancer, for the rules that admit it)."""
    inbound = [
        {
            "protocol": rule.protocol,
            "ports": rule.ports,
            "sources": _sources(spec, rule, load_balancer_id),
        }
        for rule in group.firewall_inbound
    ]
    return {
        "name": spec.firewall_name(group.name),
        "inbound_rules": inbound,
        "outbound_rules": desired_outbound(spec, group),
        "tags": [selector_tag(spec.project, spec.environment, group.name)],
        "droplet_ids": [],
    }


def _normal_ports(protocol: str, ports: Any) -> str:
    if protocol == "icmp":
        return ""
    text = str(ports if ports is not None else "").strip()
    return "all" if text in ("", "0", "all") else text


def _sorted(values: Any, kind: type = str) -> tuple[Any, ...]:
    return tuple(sorted(kind(v) for v in values or []))


def _normal_rules(rules: Iterable[Mapping[str, Any]], side: str) -> frozenset[tuple[Any, ...]]:
    """Rules as a set of comparable tuples (order and empty fields do not matter)."""
    normal = set()
    for rule in rules:
        protocol = str(rule.get("protocol", "")).lower()
        target = rule.get(side) or {}
        normal.add(
            (
                protocol,
                _normal_ports(protocol, rule.get("ports")),
                _sorted(target.get("addresses")),
                _sorted(target.get("tags")),
                _sorted(target.get("droplet_ids"), int),
                _sorted(target.get("load_balancer_uids")),
            )
        )
    return frozenset(normal)


def firewall_differences(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """Name what differs between a firewall and its desired body (empty when equal)."""
    differences = []
    for key, side in (("inbound_rules", "sources"), ("outbound_rules", "destinations")):
        if _normal_rules(existing.get(key) or [], side) != _normal_rules(desired[key], side):
            differences.append(key.replace("_", " "))
    if set(existing.get("tags") or []) != set(desired["tags"]):
        differences.append("target tags")
    if set(existing.get("droplet_ids") or []) != set(desired["droplet_ids"]):
        differences.append("target droplets")
    return differences
