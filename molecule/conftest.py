"""Shared testinfra fixtures for every molecule scenario.

Hosts are reached with testinfra's podman backend (``podman://NAME``), which
runs one ``podman exec`` per command: an order of magnitude faster than the
default backend that runs Ansible for each command.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import testinfra
import yaml

# Helper modules of the scenarios' tests, imported by test modules (and loaded
# as fixture plugins with pytest_plugins): rewrite their asserts too, which
# must be asked for before their first import.
pytest.register_assert_rewrite("appscenario")

os.environ.setdefault(
    "CONTAINERS_CONF", str(Path(__file__).resolve().parent.parent / "lab" / "containers.conf")
)


def _inventory() -> dict:
    path = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not path:
        pytest.skip("not running under molecule (MOLECULE_INVENTORY_FILE unset)")
    return yaml.safe_load(Path(path).read_text())


@pytest.fixture(scope="session")
def inventory() -> dict:
    """The inventory molecule generated for this scenario."""
    return _inventory()


@pytest.fixture(scope="session")
def group_hosts(inventory: dict) -> Callable[[str], list[str]]:
    """Return the instance names of a group of the scenario's inventory."""

    def names(group: str) -> list[str]:
        return sorted((inventory.get(group, {}) or {}).get("hosts", {}) or {})

    return names


@pytest.fixture(scope="session")
def get_host() -> Callable[[str], testinfra.host.Host]:
    """Return a testinfra host for a molecule instance, over podman exec."""
    cache: dict[str, testinfra.host.Host] = {}

    def get(name: str) -> testinfra.host.Host:
        if name not in cache:
            cache[name] = testinfra.get_host(f"podman://{name}")
        return cache[name]

    return get


def container_ip(name: str) -> str:
    """The address of a molecule instance on its podman network."""
    out = subprocess.run(
        ["podman", "inspect", "--format",
         "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    assert out, f"{name} has no network address"
    return out[0]


def ephemeral_dir() -> Path:
    """Molecule's scratch directory for this scenario (keys live there)."""
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
