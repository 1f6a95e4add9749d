"""Every module and plugin of the repository documents itself the way Ansible reads it.

``ansible-doc`` (and Automation Hub, and AWX's module docs) parse the YAML of
DOCUMENTATION, EXAMPLES and RETURN; a stray colon in a sentence turns it into
a mapping and the plugin loses its documentation while still running. Each
text is parsed here, and each module's EXAMPLES must be a list of tasks that
call the module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted((REPO / "library").glob("*.py"))
PLUGINS = sorted(
    p
    for folder in ("inventory_plugins", "vars_plugins")
    for p in (REPO / folder).glob("*.py")
    if not p.name.startswith("_")
)


def doc_strings(path: Path) -> dict[str, str]:
    """The module-level string constants DOCUMENTATION, EXAMPLES and RETURN of a file."""
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in {
                    "DOCUMENTATION",
                    "EXAMPLES",
                    "RETURN",
                }:
                    found[target.id] = str(node.value.value)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_module_documentation_examples_and_return_parse(path: Path) -> None:
    docs = doc_strings(path)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, f"{path.name}: {sorted(docs)}"
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    assert documentation["module"] == path.stem
    assert documentation["short_description"]
    for name, option in documentation["options"].items():
        assert isinstance(option, dict) and option.get("description"), f"{path.stem}: option {name}"
    examples = yaml.safe_load(docs["EXAMPLES"])
    assert isinstance(examples, list) and examples
    assert any(path.stem in task for task in examples), f"{path.stem}: no example calls the module"
    returned = yaml.safe_load(docs["RETURN"])
    for name, value in returned.items():
        assert isinstance(value, dict) and value.get("description"), f"{path.stem}: return {name}"


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: p.stem)
def test_plugin_documentation_parses(path: Path) -> None:
    docs = doc_strings(path)
    assert "DOCUMENTATION" in docs, path.name
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    assert documentation["name"] == path.stem
    assert documentation["short_description"]
    for text in ("EXAMPLES", "RETURN"):
        if text in docs:
            yaml.safe_load(docs[text])
