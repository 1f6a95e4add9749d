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
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .naming import selector_tag

if TYPE_CHECKING:
    from .spec import EnvironmentSpec, GroupSpec

PORTS_PATTERN = re.compile(r"^(all|\d{1,5}(-\d{1,5})?)$")
PROTOCOLS = ("tcp", "udp", "icmp")
# What ``any`` means as a source: every IPv4 and IPv6 address.
ANYWHERE = ("0.0.0.0/0", "::/0")

# What every droplet may send: DNS, package mirrors, the app's web services.
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
        "outbound_rules": [dict(rule) for rule in ALLOW_ALL_OUTBOUND],
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
