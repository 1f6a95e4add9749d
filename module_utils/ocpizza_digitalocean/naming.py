"""Names, tags and patterns the module and the inventory plugin must agree on."""

from __future__ import annotations

import re
from collections.abc import Mapping

DEFAULT_API_URL = "https://api.digitalocean.com/v2/"
# Environment variables that may hold the API token, in the order they are read.
TOKEN_ENV_VARS = ("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN", "DO_API_TOKEN")
API_URL_ENV_VAR = "DIGITALOCEAN_END_POINT"

ENV_TAG_PREFIX = "env:"
GROUP_TAG_PREFIX = "group:"

# Environment and project names end up in droplet names (host names) and tags.
NAME_PATTERN = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
GROUP_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
PREFIX_PATTERN = re.compile(r"^[a-z](?:[a-z0-9-]{0,14}[a-z0-9])?$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9:_-]{1,255}$")


def environment_tag(environment: str) -> str:
    """Tag that marks every droplet of an environment (``env:staging``)."""
    return f"{ENV_TAG_PREFIX}{environment}"


def group_tag(group: str) -> str:
    """Tag that puts a droplet in an inventory group (``group:dbservers``)."""
    return f"{GROUP_TAG_PREFIX}{group}"


def group_of_tag(tag: str) -> str | None:
    """The inventory group a ``group:<name>`` tag names, or None for another tag."""
    if not tag.startswith(GROUP_TAG_PREFIX):
        return None
    return tag[len(GROUP_TAG_PREFIX) :]


def selector_tag(project: str, environment: str, group: str) -> str:
    """Tag that a group's firewall targets and other rules name (``ocpizza-staging-dbservers``)."""
    return f"{project}-{environment}-{group}"


def token_from_environment(environ: Mapping[str, str]) -> str:
    """Return the first API token found in the environment variables, or ''."""
    for name in TOKEN_ENV_VARS:
        if environ.get(name):
            return environ[name]
    return ""
