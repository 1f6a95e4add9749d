"""Copy the collections of requirements.yml out of the ``ansible`` package's bundle.

Used by the execution environment's build (execution-environment.yml, galaxy
stage), where Ansible Galaxy may not be reachable:

    python3 bundle_collections.py REQUIREMENTS_YML BUNDLE_DIR TARGET_DIR

BUNDLE_DIR is the ``ansible_collections`` folder of the pinned ``ansible``
package (``pip install --no-deps --target DIR ansible==X``), TARGET_DIR the
``ansible_collections`` folder of a collections path. Each collection named in
requirements.yml is copied, with the collections it depends on (its
MANIFEST.json), transitively. Versions are not checked here: ansible-builder's
own ``ansible-galaxy collection install -r requirements.yml`` does that next
against TARGET_DIR, and fails the build (it cannot reach Galaxy for a better
one) when the bundle's version is outside requirements.yml's range. A
collection missing from the bundle stops the build here, naming it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml


def required(requirements: Path) -> list[str]:
    """The collection names (namespace.name) listed in a requirements.yml."""
    data = yaml.safe_load(requirements.read_text()) or {}
    names = []
    for entry in data.get("collections") or []:
        name = entry["name"] if isinstance(entry, dict) else str(entry)
        names.append(name)
    return names


def dependencies(bundle: Path, name: str) -> list[str]:
    """The collections one bundled collection depends on (from its MANIFEST.json)."""
    namespace, collection = name.split(".", 1)
    manifest = bundle / namespace / collection / "MANIFEST.json"
    info = json.loads(manifest.read_text())["collection_info"]
    return sorted(info.get("dependencies") or {})


def closure(bundle: Path, names: list[str]) -> list[str]:
    """The named collections and everything they depend on, in a stable order."""
    seen: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        namespace, collection = name.split(".", 1)
        if not (bundle / namespace / collection / "MANIFEST.json").is_file():
            raise SystemExit(f"collection {name} is not in the ansible package's bundle ({bundle})")
        seen.append(name)
        todo.extend(dependencies(bundle, name))
    return seen


def copy(bundle: Path, target: Path, names: list[str]) -> None:
    """Copy each collection's folder from the bundle to the target."""
    for name in names:
        namespace, collection = name.split(".", 1)
        dest = target / namespace / collection
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bundle / namespace / collection, dest, symlinks=True)


def main(argv: list[str]) -> int:
    """Command line: requirements.yml, bundle folder, target folder."""
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    requirements, bundle, target = (Path(a) for a in argv)
    names = closure(bundle, required(requirements))
    copy(bundle, target, names)
    print("collections from the ansible package: " + ", ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
