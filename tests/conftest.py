"""Make the project's plugin folders importable from the unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

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
    import os

    if collection_path.name == "platform" and os.environ.get("OCPIZZA_PLATFORM") != "1":
        return True
    return None
