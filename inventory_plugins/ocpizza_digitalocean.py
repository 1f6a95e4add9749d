"""Inventory plugin: the droplets of one OC Pizza environment, grouped by tag."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ocpizza_digitalocean
short_description: OC Pizza droplets on DigitalOcean, grouped by their tags
description:
  - Lists the droplets of one environment of the OC Pizza platform through the DigitalOcean
    API (with python-digitalocean) and puts each in the inventory group named by its
    C(group:<name>) tag, for example C(dbservers), C(appservers) or C(webservers).
  - Only droplets tagged both C(<project>) and C(env:<environment>) are listed, so one
    account can hold several environments and unrelated droplets. These are the tags the
    C(digitalocean_environment) module puts on the droplets it creates.
  - Sets C(ansible_host) to the droplet's public IPv4 address and C(ocpizza_private_ip) to
    its private (VPC) IPv4 address, which every role uses for traffic between hosts (MySQL
    grants, nginx upstreams, firewalls). C(ocpizza_do_droplet) holds the rest (id, size,
    region, image, status, tags). Every host also gets C(ocpizza_do_environment).
  - Droplets without a public IPv4 address yet (still being created) are left out, with a
    warning.
  - The configuration file name must end with C(digitalocean.yml) or C(digitalocean.yaml).
version_added: "1.0.0"
author: OC Pizza operations
requirements:
  - python-digitalocean >= 1.17 on the control node.
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks the file as a configuration of this plugin.
    required: true
    type: str
    choices: [ocpizza_digitalocean]
  environment:
    description: The environment to list, for example C(staging).
    required: true
    type: str
  project:
    description: Project tag every listed droplet must carry.
    type: str
    default: ocpizza
  allowed_groups:
    description:
      - Groups that C(group:<name>) tags may create. A tag naming another group is ignored
        with a warning. An empty list accepts any valid group name.
    type: list
    elements: str
    default: [dbservers, appservers, webservers]
  api_token:
    description:
      - DigitalOcean API token with read scope. Prefer the environment variable; a value in
        the file should be vault-encrypted (C(!vault)).
    type: str
    env:
      - name: DIGITALOCEAN_TOKEN
      - name: DIGITALOCEAN_ACCESS_TOKEN
  api_url:
    description: Base URL of the API (the tests point it at a local fake).
    type: str
    default: https://api.digitalocean.com/v2/
    env:
      - name: DIGITALOCEAN_END_POINT
  request_timeout:
    description: Seconds before one API request without an answer fails.
    type: float
    default: 30
  max_retries:
    description: How many times a rate-limited (429) or transiently failing request is retried.
    type: int
    default: 5
"""

EXAMPLES = r"""
# inventories/staging/digitalocean.yml
plugin: ocpizza_digitalocean
environment: staging

# With a cache, and one more group made from a host variable:
plugin: ocpizza_digitalocean
environment: production
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: .ansible/inventory-cache
cache_timeout: 300
keyed_groups:
  - key: ocpizza_do_droplet.region
    prefix: region
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

SHARED_PATH = Path(__file__).resolve().parent.parent / "module_utils" / "ocpizza_digitalocean.py"
SHARED_NAME = "ocpizza_digitalocean_shared"


def load_shared() -> ModuleType:
    """Load ``module_utils/ocpizza_digitalocean.py``, the code the module uses too.

    Controller plugins cannot import a project's ``module_utils`` by name, so it is
    loaded from its path, once.
    """
    if SHARED_NAME in sys.modules:
        return sys.modules[SHARED_NAME]
    spec = importlib.util.spec_from_file_location(SHARED_NAME, SHARED_PATH)
    if spec is None or spec.loader is None:
        raise AnsibleParserError(f"cannot load {SHARED_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[SHARED_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[SHARED_NAME]
        raise
    return module


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Builds the inventory of one environment from the DigitalOcean API."""

    NAME = "ocpizza_digitalocean"

    def verify_file(self, path: str) -> bool:
        """Accept only files named ``*digitalocean.yml`` or ``*digitalocean.yaml``."""
        return super().verify_file(path) and path.endswith(
            ("digitalocean.yml", "digitalocean.yaml")
        )

    def parse(
        self, inventory: InventoryData, loader: DataLoader, path: str, cache: bool = True
    ) -> None:
        """Read the configuration, list the droplets (or read the cache), fill the inventory."""
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        shared = load_shared()
        environment = str(self.get_option("environment"))
        project = str(self.get_option("project"))
        if not shared.NAME_PATTERN.match(environment) or not shared.NAME_PATTERN.match(project):
            raise AnsibleParserError(
                f"{path}: environment {environment!r} and project {project!r} must be lower-case "
                "letters, digits or dashes, starting with a letter"
            )

        # Set first, so that provision.yml knows the environment (and reports the
        # API's own error) even when listing the droplets fails below.
        self.inventory.set_variable("all", "ocpizza_do_environment", environment)

        cache_key = self.get_cache_key(path)
        use_cache = bool(self.get_option("cache")) and cache
        update_cache = bool(self.get_option("cache")) and not cache
        droplets: list[dict[str, Any]] | None = None
        if use_cache:
            try:
                droplets = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if droplets is None:
            droplets = self._fetch(shared, project, environment)
        if update_cache:
            self._cache[cache_key] = droplets
        self._populate(shared, droplets)

    def _fetch(self, shared: ModuleType, project: str, environment: str) -> list[dict[str, Any]]:
        """List the environment's droplets, as JSON-serialisable dicts."""
        token = self.get_option("api_token")
        if not token:
            raise AnsibleParserError(
                "No DigitalOcean API token: set DIGITALOCEAN_TOKEN (or api_token in the "
                "inventory file, vault-encrypted)."
            )
        settings = shared.TransportSettings(
            timeout=float(self.get_option("request_timeout")),
            max_retries=int(self.get_option("max_retries")),
        )
        try:
            client = shared.DigitalOceanClient(token, self.get_option("api_url"), settings)
            found = client.droplets(shared.environment_tag(environment))
        except shared.ProvisioningError as exc:
            raise AnsibleParserError(f"DigitalOcean inventory: {exc}") from exc
        return [d.as_dict() for d in found if project in d.tags]

    def _populate(self, shared: ModuleType, droplets: list[dict[str, Any]]) -> None:
        """Add the hosts, their groups and variables, then the constructed groups."""
        allowed = set(self.get_option("allowed_groups") or [])
        strict = bool(self.get_option("strict"))
        for droplet in sorted(droplets, key=lambda d: d["name"]):
            name = droplet["name"]
            if not droplet.get("public_ipv4"):
                self.display.warning(
                    f"droplet {name} has no public IPv4 address yet (status "
                    f"{droplet.get('status')}); left out of the inventory"
                )
                continue
            host = self.inventory.add_host(name)
            for tag in droplet["tags"]:
                if not tag.startswith(shared.GROUP_TAG_PREFIX):
                    continue
                group = tag[len(shared.GROUP_TAG_PREFIX) :]
                if not shared.GROUP_PATTERN.match(group) or (allowed and group not in allowed):
                    self.display.warning(f"droplet {name}: tag {tag} names no known group")
                    continue
                self.inventory.add_group(group)
                self.inventory.add_child(group, host)
            self.inventory.set_variable(host, "ansible_host", droplet["public_ipv4"])
            if droplet.get("private_ipv4"):
                self.inventory.set_variable(host, "ocpizza_private_ip", droplet["private_ipv4"])
            else:
                self.display.warning(
                    f"droplet {name} has no private (VPC) address: ocpizza_private_ip is unset"
                )
            self.inventory.set_variable(host, "ocpizza_do_droplet", dict(droplet))
            hostvars = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict)
