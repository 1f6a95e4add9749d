"""Make the project's plugin folders importable from the unit tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "roles/mysql_backup/files"))  # package ocpizza_backup
for folder in ("filter_plugins", "vars_plugins", "library", "inventory_plugins", "module_utils"):
    path = str(ROOT / folder)
    if path not in sys.path:
        sys.path.insert(0, path)


def pytest_ignore_collect(collection_path: Path, config: object) -> bool | None:
    """Leave the platform run (tests/platform: an HA lab, minutes) to its own step.

    ``make unit`` collects tests/ without it; scripts/test-all.sh runs it as
    the step "platform" with OCPIZZA_PLATFORM=1.
    """
    if collection_path.name == "platform" and os.environ.get("OCPIZZA_PLATFORM") != "1":
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``full`` unless OCPIZZA_FULL=1 (``make test-full`` sets it).

    A test is marked ``full`` when it is too slow for ``make test``'s budget;
    the skip reason says so in every ``make test`` summary, so it is never
    silently lost.
    """
    if os.environ.get("OCPIZZA_FULL") == "1":
        return
    skip = pytest.mark.skip(reason="make test-full only (OCPIZZA_FULL=1): over make test's budget")
    for item in items:
        if item.get_closest_marker("full"):
            item.add_marker(skip)
