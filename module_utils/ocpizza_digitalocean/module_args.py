"""The module's side: its arguments, the spec they describe, and one run.

``library/digitalocean_environment.py`` holds the documentation and calls
:func:`main`; everything the module does is here, where the tests reach it.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from .client import DigitalOceanClient
from .errors import ProvisioningError, SpecError
from .firewall import EgressRule, FirewallRule, egress_rules_from_policy, rules_from_policy
from .loadbalancer import build_load_balancer
from .naming import API_URL_ENV_VAR, DEFAULT_API_URL
from .plan import summary
from .reconciler import EnvironmentReconciler
from .spec import EnvironmentSpec, GroupSpec, SSHKeySpec
from .transport import HAS_DIGITALOCEAN, TransportSettings

NO_TOKEN = (
    "No DigitalOcean API token: export DIGITALOCEAN_TOKEN, or define vault_digitalocean_token "
    "in the inventory's vault (module option oauth_token)."
)

_FIREWALL_INBOUND = {
    "protocol": {"type": "str", "choices": ["tcp", "udp", "icmp"], "default": "tcp"},
    "ports": {"type": "raw"},
    "sources": {"type": "dict", "required": True},
}
# What every entry of role firewall's policies names: the flow, its port and protocol.
_FIREWALL_FLOW = {
    "name": {"type": "str", "required": True},
    "port": {"type": "int", "required": True},
    "proto": {"type": "str", "choices": ["tcp", "udp"], "default": "tcp"},
}
_FIREWALL_ALLOWED = {
    **_FIREWALL_FLOW,
    "from_group": {"type": "str"},
    "sources": {"type": "list", "elements": "str"},
    "from_load_balancer": {"type": "bool", "default": False},
}
# One outbound flow of role firewall's output chain. to_group and destinations
# exclude each other and one is required: egress_rule_from_policy checks that,
# in a message that names the entry (AnsibleModule's would not).
_FIREWALL_EGRESS = {
    **_FIREWALL_FLOW,
    "to_group": {"type": "str"},
    "destinations": {"type": "list", "elements": "str"},
}
_GROUP = {
    "name": {"type": "str", "required": True},
    "hostname_prefix": {"type": "str"},
    "count": {"type": "int", "default": 1},
    "size": {"type": "str", "required": True},
    "image": {"type": "str"},
    "firewall_inbound": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": _FIREWALL_INBOUND,
    },
    "firewall_allowed": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": _FIREWALL_ALLOWED,
        "mutually_exclusive": [["from_group", "sources"]],
    },
    # No default: omitted (None), the group's outbound traffic is all allowed.
    "firewall_egress": {"type": "list", "elements": "dict", "options": _FIREWALL_EGRESS},
}
# Ports and numbers are "raw" so that spec.py's checks, which name the
# inventory variable, judge them (AnsibleModule's own message would not).
_FORWARDING_RULE = {
    "entry_protocol": {"type": "str", "required": True},
    "entry_port": {"type": "raw", "required": True},
    "target_protocol": {"type": "str"},
    "target_port": {"type": "raw"},
    "tls_passthrough": {"type": "bool", "default": False},
}
_HEALTH_CHECK = {
    "protocol": {"type": "str", "required": True},
    "port": {"type": "raw", "required": True},
    "path": {"type": "str"},
    "check_interval_seconds": {"type": "raw"},
    "response_timeout_seconds": {"type": "raw"},
    "healthy_threshold": {"type": "raw"},
    "unhealthy_threshold": {"type": "raw"},
}
_LOAD_BALANCER = {
    "target_group": {"type": "str", "required": True},
    "size_unit": {"type": "raw", "default": 1},
    "forwarding_rules": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": _FORWARDING_RULE,
    },
    "health_check": {"type": "dict", "required": True, "options": _HEALTH_CHECK},
    "enable_proxy_protocol": {"type": "bool", "default": True},
    "redirect_http_to_https": {"type": "bool", "default": False},
}
_SSH_KEY = {
    "name": {"type": "str", "required": True},
    "public_key": {"type": "str", "no_log": False},
    "public_key_file": {"type": "path", "no_log": False},
}

ARGUMENT_SPEC: dict[str, Any] = {
    "environment": {"type": "str", "required": True},
    "project": {"type": "str", "default": "ocpizza"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "confirm_destroy": {"type": "str"},
    "oauth_token": {
        "type": "str",
        "no_log": True,
        "aliases": ["api_token"],
        "fallback": (env_fallback, ["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"]),
    },
    "api_url": {
        "type": "str",
        "default": DEFAULT_API_URL,
        "fallback": (env_fallback, [API_URL_ENV_VAR]),
    },
    "region": {"type": "str"},
    "image": {"type": "str", "default": "ubuntu-24-04-x64"},
    "vpc": {
        "type": "dict",
        "default": {},
        "options": {
            "name": {"type": "str"},
            "ip_range": {"type": "str"},
            "description": {"type": "str", "default": ""},
        },
    },
    "groups": {"type": "list", "elements": "dict", "default": [], "options": _GROUP},
    "load_balancer": {"type": "dict", "options": _LOAD_BALANCER},
    "ssh_sources": {"type": "list", "elements": "str", "default": []},
    "ssh_port": {"type": "int", "default": 22},
    "ssh_keys": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "no_log": False,
        "options": _SSH_KEY,
        "mutually_exclusive": [["public_key", "public_key_file"]],
        "required_one_of": [["public_key", "public_key_file"]],
    },
    "tags": {"type": "list", "elements": "str", "default": []},
    "monitoring": {"type": "bool", "default": True},
    "ipv6": {"type": "bool", "default": False},
    "backups": {"type": "bool", "default": False},
    # May carry the droplets' SSH host key (the staging workflow pins it): never logged.
    "user_data": {"type": "str", "no_log": True},
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "int", "default": 600},
    "poll_interval": {"type": "float", "default": 5.0},
    "request_timeout": {"type": "float", "default": 30.0},
    "max_retries": {"type": "int", "default": 5},
}


def default_prefix(group: str) -> str:
    """Short host-name part of a group: ``dbservers`` gives ``db``."""
    return group[: -len("servers")] if group.endswith("servers") and group != "servers" else group


def read_public_key(name: str, key: dict[str, Any]) -> str:
    """Return a key's text, from ``public_key`` or from the file ``public_key_file``."""
    if key.get("public_key"):
        return str(key["public_key"]).strip()
    path = os.path.expanduser(str(key["public_key_file"]))
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise SpecError(
            f"ssh key {name}: cannot read public_key_file {path}: {exc.strerror}"
        ) from exc


def group_rules(group: dict[str, Any], params: dict[str, Any]) -> list[FirewallRule]:
    """A group's cloud rules: its host firewall policy (with SSH), then explicit rules."""
    where = f"group {group['name']}"
    rules = []
    if group.get("firewall_allowed") or params.get("ssh_sources"):
        rules = rules_from_policy(
            group.get("firewall_allowed") or [],
            params.get("ssh_sources") or [],
            params.get("ssh_port") or 22,
            f"{where}, firewall_allowed",
            has_load_balancer=bool(params.get("load_balancer")),
        )
    explicit = group.get("firewall_inbound") or []
    return rules + [
        FirewallRule.from_dict(rule, f"{where}, firewall rule {index + 1}")
        for index, rule in enumerate(explicit)
    ]


def group_outbound(group: dict[str, Any]) -> list[EgressRule] | None:
    """A group's outbound cloud rules, from its ``firewall_egress`` (None: all allowed)."""
    egress = group.get("firewall_egress")
    if egress is None:
        return None
    return egress_rules_from_policy(egress, f"group {group['name']}, firewall_egress")


def build_group(group: dict[str, Any], params: dict[str, Any]) -> GroupSpec:
    """Turn one element of the ``groups`` option into a :class:`GroupSpec`."""
    return GroupSpec(
        name=group["name"],
        hostname_prefix=group["hostname_prefix"] or default_prefix(group["name"]),
        size=group["size"],
        image=group["image"] or params["image"],
        count=group["count"],
        firewall_inbound=group_rules(group, params),
        firewall_outbound=group_outbound(group),
    )


def build_spec(params: dict[str, Any]) -> EnvironmentSpec:
    """Turn the module parameters into an :class:`EnvironmentSpec`."""
    vpc = params["vpc"] or {}
    return EnvironmentSpec(
        project=params["project"],
        environment=params["environment"],
        region=params["region"] or "",
        groups=[build_group(group, params) for group in params["groups"]],
        vpc_name=vpc.get("name") or "",
        vpc_ip_range=vpc.get("ip_range") or None,
        vpc_description=vpc.get("description")
        or f"{params['project']} {params['environment']} (managed by Ansible)",
        ssh_keys=[
            SSHKeySpec(key["name"], read_public_key(key["name"], key)) for key in params["ssh_keys"]
        ],
        extra_tags=list(params["tags"]),
        monitoring=params["monitoring"],
        ipv6=params["ipv6"],
        backups=params["backups"],
        user_data=params["user_data"],
        wait=params["wait"],
        wait_timeout=float(params["wait_timeout"]),
        poll_interval=float(params["poll_interval"]),
        load_balancer=build_load_balancer(params.get("load_balancer")),
    )


def _refusal(module: AnsibleModule) -> str | None:
    """Why the module must stop before any API call, or None."""
    params = module.params
    if not HAS_DIGITALOCEAN:
        return missing_required_lib("python-digitalocean")
    if not params["oauth_token"]:
        return NO_TOKEN
    confirmed = params["confirm_destroy"] == params["environment"]
    if params["state"] == "absent" and not module.check_mode and not confirmed:
        return (
            f"Refusing to destroy environment {params['environment']}: set confirm_destroy "
            f"to {params['environment']!r} to confirm."
        )
    return None


def run_module(module: AnsibleModule) -> None:
    """Make the environment present or absent, and exit the module with the result."""
    refusal = _refusal(module)
    if refusal:
        module.fail_json(msg=refusal, changed=False)
    params = module.params
    settings = TransportSettings(
        timeout=params["request_timeout"], max_retries=params["max_retries"]
    )
    try:
        client = DigitalOceanClient(params["oauth_token"], params["api_url"], settings)
        reconciler = EnvironmentReconciler(client, build_spec(params), module.check_mode)
        outcome = reconciler.present() if params["state"] == "present" else reconciler.absent()
    except ProvisioningError as exc:
        module.fail_json(msg=str(exc), api_retries=settings.retries)
    except Exception as exc:  # python-digitalocean's own errors (bad JSON, ...)
        module.fail_json(
            msg=f"DigitalOcean call failed: {exc.__class__.__name__}: {exc}",
            api_retries=settings.retries,
        )
    result = outcome.as_dict()
    for warning in outcome.warnings:
        module.warn(warning)
    result["api_retries"] = settings.retries
    result["msg"] = summary(params["state"], result["plan_lines"], module.check_mode)
    module.exit_json(**result)


def main() -> None:
    """The module ``digitalocean_environment`` (its file holds only its documentation)."""
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "present", ["region", "groups"])],
        supports_check_mode=True,
    )
    run_module(module)
