"""A role's templates rendered the way Ansible renders them, for the unit tests.

StrictUndefined (a variable the test forgot fails), ``trim_blocks`` as Ansible
sets it, and Ansible's core filters (``to_json``, ``quote``, ...) except
``default``, which Jinja's own provides.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from ansible.plugins.filter.core import FilterModule as CoreFilters

REPO = Path(__file__).resolve().parents[2]


def role_template_env(role: str) -> jinja2.Environment:
    """A Jinja environment loading ``roles/<role>/templates``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(REPO / "roles" / role / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
    )
    env.filters.update({k: v for k, v in CoreFilters().filters().items() if k != "default"})
    return env
