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
    default: [dbservers, appservers, webservers, monitoring]
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
notes:
  - The API calls are those of the C(digitalocean_environment) module, imported from the
    project's C(module_utils/ocpizza_digitalocean/) package (found through the
    C(module_utils) setting of ansible.cfg).
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

from typing import Any

import ansible.module_utils
from ansible import constants as C
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable


def _with_project_module_utils() -> None:
    """Make the configured module_utils folders part of ``ansible.module_utils`` here too.

    Ansible ships a module's ``ansible.module_utils.*`` imports from the folders of
    the ``module_utils`` setting (ansible.cfg); on the controller that package is only
    Ansible's own. Adding the same folders to its path lets this plugin import the
    code the module uses, under the same name, with a plain import.
    """
    for folder in C.DEFAULT_MODULE_UTILS_PATH or []:
        if folder not in ansible.module_utils.__path__:
            ansible.module_utils.__path__.append(folder)


_with_project_module_utils()

from ansible.module_utils.ocpizza_digitalocean.client import DigitalOceanClient
from ansible.module_utils.ocpizza_digitalocean.errors import ProvisioningError
from ansible.module_utils.ocpizza_digitalocean.naming import (
    GROUP_PATTERN,
    NAME_PATTERN,
    environment_tag,
    group_of_tag,
)
from ansible.module_utils.ocpizza_digitalocean.transport import TransportSettings


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
        environment = str(self.get_option("environment"))
        project = str(self.get_option("project"))
        if not NAME_PATTERN.match(environment) or not NAME_PATTERN.match(project):
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
            droplets = self._fetch(project, environment)
        if update_cache:
            self._cache[cache_key] = droplets
        self._populate(droplets)

    def _fetch(self, project: str, environment: str) -> list[dict[str, Any]]:
        """List the environment's droplets, as JSON-serialisable dicts."""
        token = self.get_option("api_token")
        if not token:
            raise AnsibleParserError(
                "No DigitalOcean API token: set DIGITALOCEAN_TOKEN (or api_token in the "
                "inventory file, vault-encrypted)."
            )
        settings = TransportSettings(
            timeout=float(self.get_option("request_timeout")),
            max_retries=int(self.get_option("max_retries")),
        )
        try:
            client = DigitalOceanClient(token, self.get_option("api_url"), settings)
            found = client.droplets(environment_tag(environment))
        except ProvisioningError as exc:
            raise AnsibleParserError(f"DigitalOcean inventory: {exc}") from exc
        return [d.as_dict() for d in found if project in d.tags]

    def _populate(self, droplets: list[dict[str, Any]]) -> None:
        """Add the hosts, their groups and variables, then the constructed groups."""
        strict = bool(self.get_option("strict"))
        for droplet in sorted(droplets, key=lambda d: d["name"]):
            if not droplet.get("public_ipv4"):
                self.display.warning(
                    f"droplet {droplet['name']} has no public IPv4 address yet (status "
                    f"{droplet.get('status')}); left out of the inventory"
                )
                continue
            host = self.inventory.add_host(droplet["name"])
            self._add_to_groups(host, droplet["tags"])
            self._set_host_vars(host, droplet)
            hostvars = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict)

    def _add_to_groups(self, host: str, tags: list[str]) -> None:
        """Put the host in the group each of its ``group:<name>`` tags names."""
        allowed = set(self.get_option("allowed_groups") or [])
        for tag in tags:
            group = group_of_tag(tag)
            if group is None:
                continue
            if not GROUP_PATTERN.match(group) or (allowed and group not in allowed):
                self.display.warning(f"droplet {host}: tag {tag} names no known group")
                continue
            self.inventory.add_group(group)
            self.inventory.add_child(group, host)

    def _set_host_vars(self, host: str, droplet: dict[str, Any]) -> None:
        """Public address to connect to, private address for traffic between hosts."""
        self.inventory.set_variable(host, "ansible_host", droplet["public_ipv4"])
        if droplet.get("private_ipv4"):
            self.inventory.set_variable(host, "ocpizza_private_ip", droplet["private_ipv4"])
        else:
            self.display.warning(
                f"droplet {host} has no private (VPC) address: ocpizza_private_ip is unset"
            )
        self.inventory.set_variable(host, "ocpizza_do_droplet", dict(droplet))
