"""The execution environment's definition agrees with the control node's pins.

execution-environment.yml repeats a few pins of requirements.txt (ansible-builder
reads no other file for them): a bump of one without the other would give AWX
jobs another ansible or another python-digitalocean than the operators'. These
tests catch that, check the collections the image takes from the ansible
package's bundle (ee/bundle_collections.py), and that ansible-navigator.yml
runs the image the definition builds. Fast: no container.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ee"))

import bundle_collections  # noqa: E402  (ee/ is not a package: put on sys.path above)

EE = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
NAVIGATOR = yaml.safe_load((ROOT / "ansible-navigator.yml").read_text())["ansible-navigator"]


def pins(path: Path) -> dict[str, str]:
    """{name: exact version} of a requirements file's ``name==version`` lines."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            req = Requirement(line)
            found[req.name.lower()] = str(req.specifier).removeprefix("==")
    return found


def ee_pin(line: str) -> tuple[str, str]:
    req = Requirement(line)
    return req.name.lower(), str(req.specifier).removeprefix("==")


def bundle_pin() -> str:
    """The ansible package the galaxy stage takes the collections from (ARG OCPIZZA_ANSIBLE)."""
    steps = EE["additional_build_steps"]["prepend_galaxy"]
    match = re.search(r"^ARG OCPIZZA_ANSIBLE=(\S+)$", steps, re.MULTILINE)
    assert match, "prepend_galaxy must set ARG OCPIZZA_ANSIBLE=ansible==<version>"
    return match.group(1)


def test_the_python_libraries_are_the_control_nodes():
    control = pins(ROOT / "requirements.txt")
    for line in EE["dependencies"]["python"]:
        name, version = ee_pin(line)
        assert control.get(name) == version, (
            f"execution-environment.yml pins {line}, requirements.txt {name}=={control.get(name)}"
        )


def test_the_collections_come_from_the_pinned_ansible_package():
    name, version = ee_pin(bundle_pin())
    assert name == "ansible"
    assert pins(ROOT / "requirements.txt")["ansible"] == version


def test_ansible_core_is_the_one_the_pinned_ansible_requires():
    name, version = ee_pin(EE["dependencies"]["ansible_core"]["package_pip"])
    assert name == "ansible-core"
    # The .venv running this test holds the pinned ansible (requirements.txt).
    assert metadata.version("ansible") == pins(ROOT / "requirements.txt")["ansible"]
    wanted = [Requirement(r) for r in metadata.requires("ansible") or []]
    core = next(r for r in wanted if r.name == "ansible-core")
    assert core.specifier.contains(version), f"ansible needs {core}, the EE installs {version}"


def test_the_collections_of_requirements_yml_and_their_dependencies_are_copied(tmp_path):
    bundle = Path(metadata.distribution("ansible").locate_file("ansible_collections"))
    wanted = bundle_collections.required(ROOT / "requirements.yml")
    names = bundle_collections.closure(bundle, wanted)
    assert set(wanted) <= set(names)
    # community.general needs community.library_inventory_filtering_v1.
    assert "community.library_inventory_filtering_v1" in names
    bundle_collections.copy(bundle, tmp_path, ["ansible.posix"])
    assert (tmp_path / "ansible" / "posix" / "MANIFEST.json").is_file()


def test_a_collection_missing_from_the_bundle_stops_the_build_with_its_name(tmp_path):
    (tmp_path / "req.yml").write_text("collections:\n  - name: nobody.nothing\n")
    with pytest.raises(SystemExit, match=r"nobody\.nothing is not in"):
        bundle_collections.closure(tmp_path, bundle_collections.required(tmp_path / "req.yml"))


def test_navigator_runs_the_image_the_definition_builds():
    ee = NAVIGATOR["execution-environment"]
    assert ee["image"] == EE["options"]["tags"][0]
    assert ee["pull"]["policy"] == "never"
    # verify.yml asks the site on 127.0.0.1's published port from the
    # control node: the EE needs the control node's network.
    assert "--net=host" in ee["container-options"]


def test_the_base_image_has_a_python_the_pinned_ansible_core_runs_on():
    # ansible-core 2.21 needs Python >= 3.12: Debian 13, not Debian 12 (3.11).
    assert EE["images"]["base_image"]["name"].endswith(":trixie")
