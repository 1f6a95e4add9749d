"""The environment's DigitalOcean Load Balancer: its spec, API body and comparison.

One load balancer per environment, named ``<project>-<environment>-lb``, in the
environment's VPC and region. It sends the connections it receives to the
droplets that carry the selector tag of one group (the web servers), with the
PROXY protocol so that they see the visitor's address. The web servers hold
the TLS certificate, so HTTPS is passed through as TCP (no certificate on the
load balancer), and so is HTTP.

Its health check sends the PROXY protocol header too (DigitalOcean does, once
the protocol is on): the port it checks must be one where the web servers
accept the PROXY protocol from the load balancer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .errors import SpecError
from .naming import selector_tag

# DigitalOcean's price of one node (size unit) of a regional load balancer, in
# USD a month. The API has no price list for load balancers, unlike droplet
# sizes: this is the public price (https://www.digitalocean.com/pricing).
PRICE_PER_SIZE_UNIT_MONTHLY = 12.0
# How many nodes a regional load balancer may have.
SIZE_UNITS = range(1, 101)
ENTRY_PROTOCOLS = ("tcp", "http", "https", "http2", "http3", "udp")
TARGET_PROTOCOLS = ("tcp", "http", "https", "http2", "udp")
HEALTH_PROTOCOLS = ("tcp", "http", "https")
# The variable of the inventory that describes the load balancer, for errors.
VARIABLE = "ocpizza_do_load_balancer"
# What a health check is, when a field is not given (DigitalOcean's defaults).
HEALTH_DEFAULTS: dict[str, int] = {
    "check_interval_seconds": 10,
    "response_timeout_seconds": 5,
    "healthy_threshold": 5,
    "unhealthy_threshold": 3,
}


def _port(value: Any, where: str) -> int:
    """A TCP/UDP port from an int or a string of digits, or a SpecError naming ``where``."""
    text = str(value if value is not None else "").strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise SpecError(f"{where}: {value!r} is not a port (1-65535)")
    return int(text)


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    text = str(value or "").lower()
    if text not in choices:
        raise SpecError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return text


@dataclass(frozen=True)
class ForwardingRule:
    """Connections to ``entry_port`` go to ``target_port`` of every target droplet."""

    entry_protocol: str
    entry_port: int
    target_protocol: str
    target_port: int
    tls_passthrough: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> ForwardingRule:
        """Build a rule from the API's field names; the entry fields are required."""
        if not isinstance(data, Mapping):
            raise SpecError(f"{where}: a forwarding rule must be a mapping, got {data!r}")
        entry = _choice(data.get("entry_protocol"), ENTRY_PROTOCOLS, f"{where}.entry_protocol")
        entry_port = _port(data.get("entry_port"), f"{where}.entry_port")
        target = data.get("target_protocol") or entry
        target_port = data.get("target_port")
        target_port = entry_port if target_port is None else target_port
        if data.get("tls_passthrough") and entry != "https":
            raise SpecError(f"{where}.tls_passthrough: only for an https entry_protocol")
        return cls(
            entry_protocol=entry,
            entry_port=entry_port,
            target_protocol=_choice(target, TARGET_PROTOCOLS, f"{where}.target_protocol"),
            target_port=_port(target_port, f"{where}.target_port"),
            tls_passthrough=bool(data.get("tls_passthrough") or False),
        )

    def body(self) -> dict[str, Any]:
        """The rule as the API takes it (no certificate: the web servers hold it)."""
        return {**asdict(self), "certificate_id": ""}

    def text(self) -> str:
        """``443/tcp→443/tcp``."""
        return f"{self.entry_port}/{self.entry_protocol}→{self.target_port}/{self.target_protocol}"


@dataclass(frozen=True)
class HealthCheck:
    """How the load balancer decides that a droplet may receive connections."""

    protocol: str
    port: int
    path: str = ""
    check_interval_seconds: int = HEALTH_DEFAULTS["check_interval_seconds"]
    response_timeout_seconds: int = HEALTH_DEFAULTS["response_timeout_seconds"]
    healthy_threshold: int = HEALTH_DEFAULTS["healthy_threshold"]
    unhealthy_threshold: int = HEALTH_DEFAULTS["unhealthy_threshold"]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> HealthCheck:
        """Build a health check; an HTTP(S) check needs a path starting with ``/``."""
        if not isinstance(data, Mapping):
            raise SpecError(f"{where}: must be a mapping, got {data!r}")
        protocol = _choice(data.get("protocol"), HEALTH_PROTOCOLS, f"{where}.protocol")
        path = str(data.get("path") or "")
        if protocol != "tcp" and not path.startswith("/"):
            raise SpecError(f"{where}.path: {path!r} must start with / for an HTTP(S) check")
        numbers = {}
        for key, default in HEALTH_DEFAULTS.items():
            value = data.get(key)
            value = default if value is None else value
            if not str(value).isdigit() or int(value) < 1:
                raise SpecError(f"{where}.{key}: {value!r} must be a positive number")
            numbers[key] = int(value)
        port = _port(data.get("port"), f"{where}.port")
        return cls(protocol, port, path if protocol != "tcp" else "", **numbers)


@dataclass
class LoadBalancerSpec:
    """What the environment's load balancer should be."""

    target_group: str
    forwarding_rules: list[ForwardingRule]
    health_check: HealthCheck
    size_unit: int = 1
    enable_proxy_protocol: bool = True
    redirect_http_to_https: bool = False

    @property
    def monthly_price(self) -> float:
        """What the load balancer costs a month (per size unit)."""
        return PRICE_PER_SIZE_UNIT_MONTHLY * self.size_unit

    def problems(self, known_groups: list[str]) -> list[str]:
        """What is wrong with the load balancer, in words naming the variable."""
        problems = []
        if self.target_group not in known_groups:
            problems.append(
                f"{VARIABLE}.target_group: {self.target_group!r} is not a provisioned group "
                f"(known: {', '.join(known_groups)})"
            )
        if self.size_unit not in SIZE_UNITS:
            problems.append(
                f"{VARIABLE}.size_unit: unknown size {self.size_unit!r} (a number of nodes, "
                f"{SIZE_UNITS.start}-{SIZE_UNITS.stop - 1})"
            )
        if not self.forwarding_rules:
            problems.append(f"{VARIABLE}.forwarding_rules is empty: nothing to balance")
        ports = [r.entry_port for r in self.forwarding_rules]
        if len(set(ports)) != len(ports):
            problems.append(f"{VARIABLE}.forwarding_rules: an entry port is listed twice {ports}")
        return problems

    def body(
        self, name: str, project: str, environment: str, region: str, vpc_id: str
    ) -> dict[str, Any]:
        """The API body that creates (POST) or replaces (PUT) the load balancer."""
        return {
            "name": name,
            "region": region,
            "size_unit": self.size_unit,
            "forwarding_rules": [r.body() for r in self.forwarding_rules],
            "health_check": asdict(self.health_check),
            "sticky_sessions": {"type": "none"},
            "tag": selector_tag(project, environment, self.target_group),
            "enable_proxy_protocol": self.enable_proxy_protocol,
            "redirect_http_to_https": self.redirect_http_to_https,
            "vpc_uuid": vpc_id,
        }

    def summary(self) -> str:
        """A few words for the plan."""
        rules = ", ".join(r.text() for r in self.forwarding_rules)
        check = self.health_check
        return (
            f"{self.size_unit} unit{'s' if self.size_unit > 1 else ''}, {rules}, "
            f"check {check.protocol}:{check.port}{check.path}, "
            f"proxy protocol {'on' if self.enable_proxy_protocol else 'off'}, "
            f"droplets of {self.target_group}"
        )


def build_load_balancer(data: Mapping[str, Any] | None) -> LoadBalancerSpec | None:
    """The spec from the module's ``load_balancer`` option (None or empty: no load balancer)."""
    if not data or not data.get("target_group"):
        return None
    size = data.get("size_unit", 1)
    if not str(size).isdigit():
        raise SpecError(f"{VARIABLE}.size_unit: unknown size {size!r} (a number of nodes)")
    rules = data.get("forwarding_rules") or []
    if not isinstance(rules, list):
        raise SpecError(f"{VARIABLE}.forwarding_rules must be a list of rules")
    return LoadBalancerSpec(
        target_group=str(data["target_group"]),
        forwarding_rules=[
            ForwardingRule.from_dict(rule, f"{VARIABLE}.forwarding_rules[{index}]")
            for index, rule in enumerate(rules)
        ],
        health_check=HealthCheck.from_dict(
            data.get("health_check") or {}, f"{VARIABLE}.health_check"
        ),
        size_unit=int(size),
        enable_proxy_protocol=bool(data.get("enable_proxy_protocol", True)),
        redirect_http_to_https=bool(data.get("redirect_http_to_https") or False),
    )


def _normal_rules(rules: Any) -> frozenset[tuple[Any, ...]]:
    return frozenset(
        (
            str(r.get("entry_protocol", "")).lower(),
            int(r.get("entry_port") or 0),
            str(r.get("target_protocol", "")).lower(),
            int(r.get("target_port") or 0),
            bool(r.get("tls_passthrough")),
        )
        for r in rules or []
    )


def load_balancer_differences(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """Name what differs between a load balancer and its desired body (empty when equal)."""
    differences = []
    if _normal_rules(existing.get("forwarding_rules")) != _normal_rules(
        desired["forwarding_rules"]
    ):
        differences.append("forwarding rules")
    check = existing.get("health_check") or {}
    wanted = desired["health_check"]
    if any(str(check.get(k, "")) != str(v) for k, v in wanted.items()):
        differences.append("health check")
    if (existing.get("tag") or "") != desired["tag"]:
        differences.append(f"tag (targets {desired['tag']})")
    for key, label in (
        ("enable_proxy_protocol", "proxy protocol"),
        ("redirect_http_to_https", "HTTP to HTTPS redirect"),
    ):
        if bool(existing.get(key)) != bool(desired[key]):
            differences.append(f"{label} {'on' if desired[key] else 'off'}")
    if int(existing.get("size_unit") or 0) != desired["size_unit"]:
        differences.append(f"size {existing.get('size_unit')} → {desired['size_unit']} units")
    return differences


def load_balancer_info(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the module returns about the load balancer."""
    region = data.get("region")
    return {
        "id": data.get("id"),
        "name": data.get("name"),
        "status": data.get("status"),
        "ip": data.get("ip") or None,
        "size_unit": data.get("size_unit"),
        "region": region.get("slug") if isinstance(region, Mapping) else region,
        "tag": data.get("tag"),
    }
