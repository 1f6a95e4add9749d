"""The top-level group_vars/ apply to every inventory and every playbook.

Ansible alone reads group_vars/ only beside an inventory source or a
playbook; vars_plugins/project_group_vars.py closes that gap. These tests run
the real ansible-inventory / ansible-playbook commands of the virtualenv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
# Every file of the top-level group_vars/all/ (the platform contract among them).
PROJECT_ALL = {
    key: value
    for path in sorted((ROOT / "group_vars" / "all").glob("*.yml"))
    for key, value in (yaml.safe_load(path.read_text()) or {}).items()
}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), **(env or {})}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def host_vars(inventory: Path | str, host: str) -> dict:
    res = run("ansible-inventory", "-i", str(inventory), "--host", host)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def write_inventory(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    inv = where / "hosts.yml"
    inv.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        group: {"hosts": {f"{group}-1": {"ansible_connection": "local"}}}
                        for group in ("dbservers", "appservers", "webservers")
                    }
                }
            }
        )
    )
    return inv


@pytest.mark.parametrize("inventory", ["lab", "production", "staging"])
def test_project_vars_reach_every_inventory_directory(tmp_path, inventory):
    # A copy of the inventory directory's own group_vars, with a host file, so
    # the test needs no lab and no cloud account.
    inv_dir = tmp_path / inventory
    inv_dir.mkdir()
    src = ROOT / "inventories" / inventory / "group_vars"
    if src.is_dir():
        shutil.copytree(src, inv_dir / "group_vars")
    write_inventory(inv_dir)
    got = host_vars(inv_dir, "appservers-1")
    for key in ("ocpizza_gunicorn_port", "ocpizza_mysql_port", "ocpizza_project"):
        assert got[key] == PROJECT_ALL[key], key


def test_an_inventory_overrides_a_project_default(tmp_path):
    inv = write_inventory(tmp_path)
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("ocpizza_gunicorn_port: 9001\n")
    got = host_vars(inv, "webservers-1")
    assert got["ocpizza_gunicorn_port"] == 9001
    assert got["ocpizza_mysql_port"] == PROJECT_ALL["ocpizza_mysql_port"]


def test_group_specific_project_vars(tmp_path):
    project = tmp_path / "project_group_vars"
    (project / "dbservers").mkdir(parents=True)
    (project / "dbservers" / "main.yml").write_text("only_for_db: yes-db\n")
    (project / "all.yml").write_text("everyone: hello\n")
    inv = write_inventory(tmp_path / "inv")
    env = {"OCPIZZA_GROUP_VARS_DIR": str(project)}
    db = json.loads(
        run("ansible-inventory", "-i", str(inv), "--host", "dbservers-1", env=env).stdout
    )
    web = json.loads(
        run("ansible-inventory", "-i", str(inv), "--host", "webservers-1", env=env).stdout
    )
    assert db["only_for_db"] == "yes-db" and db["everyone"] == "hello"
    assert "only_for_db" not in web and web["everyone"] == "hello"


def test_a_playbook_under_playbooks_sees_project_vars(tmp_path):
    inv = write_inventory(tmp_path)
    name = ROOT / "playbooks" / f".test-project-vars-{uuid.uuid4().hex}.yml"
    name.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Show project vars",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Show",
                            "ansible.builtin.debug": {
                                "msg": "port={{ ocpizza_gunicorn_port }} project={{ ocpizza_project }}"
                            },
                        }
                    ],
                }
            ]
        )
    )
    try:
        res = run("ansible-playbook", "-i", str(inv), str(name))
    finally:
        name.unlink()
    assert res.returncode == 0, res.stdout + res.stderr
    expected = (
        f"port={PROJECT_ALL['ocpizza_gunicorn_port']} project={PROJECT_ALL['ocpizza_project']}"
    )
    assert res.stdout.count(expected) == 3, res.stdout


def test_without_the_plugin_the_vars_would_be_missing(tmp_path):
    """Guards the test itself: Ansible's defaults alone do not load them."""
    inv = write_inventory(tmp_path)
    res = run(
        "ansible-inventory",
        "-i",
        str(inv),
        "--host",
        "dbservers-1",
        env={"ANSIBLE_VARS_ENABLED": "host_group_vars"},
    )
    assert res.returncode == 0, res.stderr
    assert "ocpizza_gunicorn_port" not in json.loads(res.stdout)
