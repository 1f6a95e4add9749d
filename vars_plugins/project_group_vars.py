"""Load the repository's top-level ``group_vars/`` for every inventory."""

from __future__ import annotations

DOCUMENTATION = r"""
name: project_group_vars
short_description: Apply the repository's top-level group_vars to every inventory
description:
  - Ansible reads C(group_vars/) only beside an inventory source or a
    playbook. This project keeps its shared settings in one top-level
    C(group_vars/) directory, next to C(ansible.cfg), and wants them in force
    for every inventory (C(inventories/lab), C(inventories/production),
    C(inventories/staging), molecule's) and every playbook under
    C(playbooks/).
  - This plugin loads C(<project>/group_vars/<group>.yml) or the files of
    C(<project>/group_vars/<group>/) for every group, with the same file
    rules as Ansible's own C(host_group_vars) plugin.
  - List it B(before) C(host_group_vars) in C(vars_plugins_enabled); later
    plugins win, so an inventory's own C(group_vars/) can override a project
    default, while the project default applies wherever nothing overrides it.
  - It runs at the C(inventory) stage only, so it is applied once per
    inventory source and never again per playbook directory.
options:
  group_vars_dir:
    description:
      - The directory holding the project-wide group variables.
      - Defaults to C(group_vars/) in the repository that holds this plugin.
    type: path
    env:
      - name: OCPIZZA_GROUP_VARS_DIR
    ini:
      - section: vars_project_group_vars
        key: group_vars_dir
  stage:
    description: When the plugin runs; only C(inventory) makes sense here.
    default: inventory
    choices: [inventory]
    type: str
"""

import os
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleParserError
from ansible.inventory.group import Group, InventoryObjectType
from ansible.inventory.host import Host
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.vars import BaseVarsPlugin
from ansible.utils.vars import combine_vars

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "group_vars"


def project_group_vars_dir(configured: str | None = None) -> Path:
    """Return the directory that holds the project-wide group variables."""
    return Path(configured).expanduser().resolve() if configured else DEFAULT_DIR


class VarsModule(BaseVarsPlugin):
    """Vars plugin that loads the project-wide ``group_vars/`` directory."""

    REQUIRES_ENABLED = True
    is_stateless = True

    def get_vars(
        self,
        loader: DataLoader,
        path: str,
        entities: Host | Group | list[Host | Group],
        cache: bool = True,
    ) -> dict[str, Any]:
        """Return the variables of the given groups (hosts get nothing)."""
        if not isinstance(entities, list):
            entities = [entities]
        try:
            configured = self.get_option("group_vars_dir")
        except KeyError:
            configured = None
        base = project_group_vars_dir(configured)
        if not base.is_dir():
            return {}

        data: dict[str, Any] = {}
        for entity in entities:
            if getattr(entity, "base_type", None) is not InventoryObjectType.GROUP:
                continue
            for found in loader.find_vars_files(os.fspath(base), entity.name):
                try:
                    new = loader.load_from_file(
                        found, cache="all" if cache else "none", unsafe=True,
                        trusted_as_template=True,
                    )
                except Exception as exc:
                    raise AnsibleParserError(f"Could not load {found!r}: {exc}") from exc
                if new:
                    data = combine_vars(data, new)
        return data
