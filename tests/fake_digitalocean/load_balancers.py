"""Load balancers of the fake DigitalOcean API (``/v2/load_balancers``).

The real API's shapes and status codes: create answers 202 with the load
balancer in status ``new`` and no address; it becomes ``active`` with a public
address after the same delay (or number of reads) as a droplet. Update is a PUT
of the whole body (200); delete answers 204; an unknown id 404; a malformed
body 422 naming the field. Deleting a load balancer takes it out of the cloud
firewalls' rules, as DigitalOcean does.
"""

from __future__ import annotations

import copy
import itertools
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import FakeConfig

Response = tuple[int, dict[str, Any] | None, dict[str, str]]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
ENTRY_PROTOCOLS = ("http", "https", "http2", "http3", "tcp", "udp")
TARGET_PROTOCOLS = ("http", "https", "http2", "tcp", "udp")
HEALTH_PROTOCOLS = ("http", "https", "tcp")
NOT_FOUND = "The resource you were accessing could not be found."


def _error(status: int, message: str, error_id: str = "unprocessable_entity") -> Response:
    return status, {"id": error_id, "message": message}, {}


def _port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def forwarding_rule_problem(rule: Any) -> str | None:
    """What the real API says about a malformed forwarding rule (None: it is fine)."""
    if not isinstance(rule, dict):
        return "forwarding_rules must be objects"
    if rule.get("entry_protocol") not in ENTRY_PROTOCOLS:
        return "forwarding_rules.entry_protocol is invalid"
    if rule.get("target_protocol") not in TARGET_PROTOCOLS:
        return "forwarding_rules.target_protocol is invalid"
    if not _port(rule.get("entry_port")) or not _port(rule.get("target_port")):
        return "forwarding_rules ports must be between 1 and 65535"
    return None


def health_check_problem(check: Any) -> str | None:
    """What the real API says about a malformed health check (None: it is fine)."""
    if not isinstance(check, dict):
        return "health_check must be an object"
    if check.get("protocol") not in HEALTH_PROTOCOLS:
        return "health_check.protocol is invalid"
    if not _port(check.get("port")):
        return "health_check.port must be between 1 and 65535"
    if check.get("protocol") != "tcp" and not str(check.get("path") or "").startswith("/"):
        return "health_check.path must start with /"
    return None


class LoadBalancerRoutes:
    """Mixed into FakeDigitalOcean: the account's load balancers and their routes."""

    config: FakeConfig
    tags: dict[str, dict[str, Any]]
    vpcs: dict[str, dict[str, Any]]
    firewalls: dict[str, dict[str, Any]]
    load_balancers: dict[str, dict[str, Any]]
    _lb_meta: dict[str, dict[str, Any]]
    _lb_ips: itertools.count[int]

    def _page(
        self, key: str, items: list[dict[str, Any]], path: str, query: dict[str, list[str]]
    ) -> Response:
        raise NotImplementedError  # provided by FakeDigitalOcean

    def load_balancer_routes(self) -> list[tuple[str, str, Any]]:
        """The routes of ``/v2/load_balancers``."""
        return [
            ("GET", r"/v2/load_balancers", self._list_lbs),
            ("POST", r"/v2/load_balancers", self._create_lb),
            ("GET", r"/v2/load_balancers/([^/]+)", self._get_lb),
            ("PUT", r"/v2/load_balancers/([^/]+)", self._update_lb),
            ("DELETE", r"/v2/load_balancers/([^/]+)", self._delete_lb),
        ]

    # -- test helpers --------------------------------------------------------

    def load_balancer_named(self, name: str) -> dict[str, Any] | None:
        """The load balancer with this name (the first one), or None."""
        return next((lb for lb in self.load_balancers.values() if lb["name"] == name), None)

    # -- checks --------------------------------------------------------------

    def _lb_problem(self, body: dict[str, Any], creating: bool) -> str | None:
        name = str(body.get("name") or "")
        if not NAME_RE.match(name):
            return "name must contain only alphanumeric characters, dashes and periods"
        if body.get("region") not in self.config.regions:
            return "region is invalid"
        size_unit = body.get("size_unit", 1)
        if not isinstance(size_unit, int) or not 1 <= size_unit <= 100:
            return "size_unit must be between 1 and 100"
        rules = body.get("forwarding_rules")
        if not isinstance(rules, list) or not rules:
            return "forwarding_rules is required"
        problems = [forwarding_rule_problem(rule) for rule in rules]
        problems.append(health_check_problem(body.get("health_check") or {}))
        found = next((p for p in problems if p), None)
        if found:
            return found
        tag = body.get("tag")
        if tag and body.get("droplet_ids"):
            return "specify either tag or droplet_ids, not both"
        if tag and tag not in self.tags:
            return f"tag {tag} does not exist"
        vpc = self.vpcs.get(str(body.get("vpc_uuid") or ""))
        if creating and body.get("vpc_uuid") and (vpc is None or vpc["region"] != body["region"]):
            return "vpc_uuid is invalid or not in the load balancer's region"
        return None

    def _lb_from(self, lb_id: str, body: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        check = body.get("health_check") or {}
        return {
            "id": lb_id,
            "name": body["name"],
            "ip": old.get("ip", ""),
            "ipv6": "",
            "size_unit": body.get("size_unit", 1),
            "type": "REGIONAL",
            "algorithm": "round_robin",
            "status": old.get("status", "new"),
            "created_at": old.get("created_at") or time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "forwarding_rules": [
                {"certificate_id": "", "tls_passthrough": False, **rule}
                for rule in body["forwarding_rules"]
            ],
            "health_check": {
                "protocol": check["protocol"],
                "port": check["port"],
                "path": check.get("path", "/") if check["protocol"] != "tcp" else "",
                "check_interval_seconds": check.get("check_interval_seconds", 10),
                "response_timeout_seconds": check.get("response_timeout_seconds", 5),
                "healthy_threshold": check.get("healthy_threshold", 5),
                "unhealthy_threshold": check.get("unhealthy_threshold", 3),
            },
            "sticky_sessions": body.get("sticky_sessions") or {"type": "none"},
            "region": copy.deepcopy(self.config.regions[body["region"]]),
            "tag": body.get("tag") or "",
            "droplet_ids": list(body.get("droplet_ids") or []),
            "redirect_http_to_https": bool(body.get("redirect_http_to_https")),
            "enable_proxy_protocol": bool(body.get("enable_proxy_protocol")),
            "enable_backend_keepalive": bool(body.get("enable_backend_keepalive")),
            "http_idle_timeout_seconds": body.get("http_idle_timeout_seconds", 60),
            "vpc_uuid": old.get("vpc_uuid") or body.get("vpc_uuid") or "",
            "disable_lets_encrypt_dns_records": False,
            "firewall": body.get("firewall") or {"deny": [], "allow": []},
        }

    def _advance_lb(self, lb: dict[str, Any]) -> None:
        """Count a read of a new load balancer; activate it when its time has come."""
        if lb["status"] != "new":
            return
        meta = self._lb_meta[lb["id"]]
        meta["polls"] += 1
        if self._activation_due(meta):
            number = next(self._lb_ips)
            lb.update(status="active", ip=f"127.3.{number // 250}.{number % 250 + 2}")

    # -- routes --------------------------------------------------------------

    def _list_lbs(self, query: dict[str, list[str]], **_: Any) -> Response:
        for lb in self.load_balancers.values():
            self._advance_lb(lb)
        items = list(self.load_balancers.values())
        return self._page("load_balancers", items, "/v2/load_balancers", query)

    def _create_lb(self, body: dict[str, Any], **_: Any) -> Response:
        problem = self._lb_problem(body, creating=True)
        if problem:
            return _error(422, problem)
        lb_id = str(uuid.uuid4())
        self.load_balancers[lb_id] = self._lb_from(lb_id, body, {})
        self._lb_meta[lb_id] = {"created": time.monotonic(), "polls": 0}
        return 202, {"load_balancer": copy.deepcopy(self.load_balancers[lb_id])}, {}

    def _get_lb(self, lb_id: str, **_: Any) -> Response:
        lb = self.load_balancers.get(lb_id)
        if lb is None:
            return _error(404, NOT_FOUND, "not_found")
        self._advance_lb(lb)
        return 200, {"load_balancer": copy.deepcopy(lb)}, {}

    def _update_lb(self, lb_id: str, body: dict[str, Any], **_: Any) -> Response:
        old = self.load_balancers.get(lb_id)
        if old is None:
            return _error(404, NOT_FOUND, "not_found")
        problem = self._lb_problem(body, creating=False)
        if problem:
            return _error(422, problem)
        if body.get("region") != old["region"]["slug"]:
            return _error(422, "region cannot be changed")
        self.load_balancers[lb_id] = self._lb_from(lb_id, body, old)
        return 200, {"load_balancer": copy.deepcopy(self.load_balancers[lb_id])}, {}

    def _delete_lb(self, lb_id: str, **_: Any) -> Response:
        if self.load_balancers.pop(lb_id, None) is None:
            return _error(404, NOT_FOUND, "not_found")
        for firewall in self.firewalls.values():
            for rule in firewall["inbound_rules"]:
                uids = rule["sources"].get("load_balancer_uids") or []
                if lb_id in uids:
                    uids.remove(lb_id)
                    if not uids:
                        del rule["sources"]["load_balancer_uids"]
        return 204, None, {}
