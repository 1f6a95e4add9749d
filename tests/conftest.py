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
