"""awx/controller.yml (the AWX objects as code) against the repository, and a job's inventory.

The awx.awx collection is not in the pinned ansible package, so the job
templates are a YAML description (infra.controller_configuration's data
model) that no tool here applies: these tests are what keeps it true. Every
name it uses resolves; every runbook playbook has a job template; every survey
asks a variable its playbook (or a role it calls) reads.

The second half simulates how AWX hands a job its inventory (an inventory
sync runs ``ansible-inventory --list --export`` on the project's inventory
file; the job gets that JSON from an executable script in
/runner/inventory/hosts, awx/main/tasks/jobs.py) and checks that a job then
sees every variable of every production host exactly as ``ansible-playbook -i
inventories/production`` does, vault-encrypted values included. Fast: no
container, a few ansible-inventory runs.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader
from fake_digitalocean import testing

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CONTROLLER = DataLoader().load_from_file(str(ROOT / "awx" / "controller.yml"))
TEMPLATES = CONTROLLER["controller_templates"]
# Playbooks that are no runbook procedure: internal ones, the local lab.
NOT_RUNBOOK = {"lab.yml", "lab-destroy.yml"}
# Where AWX puts the project inside the job's execution environment.
AWX_PROJECT = "/runner/project"


def names(key: str) -> set[str]:
    return {item["name"] for item in CONTROLLER[key]}


def role_variables() -> str:
    """The text of every role's defaults and argument specs (where role variables are named)."""
    parts = []
    for pattern in ("roles/*/defaults/main.yml", "roles/*/meta/argument_specs.yml"):
        parts.extend(p.read_text() for p in sorted(ROOT.glob(pattern)))
    return "\n".join(parts)


def test_every_runbook_playbook_has_a_job_template():
    runbook = {
        p.name
        for p in (ROOT / "playbooks").glob("*.yml")
        if not p.name.startswith("_") and p.name not in NOT_RUNBOOK
    }
    templated = {Path(t["playbook"]).name for t in TEMPLATES}
    assert runbook - templated == set(), "playbooks without a job template in awx/controller.yml"


def test_job_templates_name_only_what_the_description_defines():
    credentials = names("controller_credentials")
    for t in TEMPLATES:
        assert (ROOT / t["playbook"]).is_file(), t["name"]
        assert t["project"] in names("controller_projects"), t["name"]
        assert t["inventory"] in names("controller_inventories"), t["name"]
        assert t["execution_environment"] in names("controller_execution_environments")
        assert set(t["credentials"]) <= credentials, t["name"]
        # Every job gets the job environment (see test_a_job_sees_...).
        assert "OC Pizza job environment" in t["credentials"], t["name"]
        for key in ("started", "success", "error"):
            assert set(t.get(f"notification_templates_{key}", [])) <= names(
                "controller_notifications"
            )
    for source in CONTROLLER["controller_inventory_sources"]:
        assert (ROOT / source["source_path"]).is_file(), source["name"]
        assert source["inventory"] in names("controller_inventories")
    for cred in CONTROLLER["controller_credentials"]:
        assert cred["credential_type"] in names("controller_credential_types") | {
            "Source Control",
            "Machine",
            "Vault",
        }


def test_survey_variables_are_read_by_their_playbook_or_its_roles():
    roles = role_variables()
    for t in TEMPLATES:
        if not t.get("survey_enabled"):
            continue
        playbook = (ROOT / t["playbook"]).read_text()
        for question in t["survey_spec"]["spec"]:
            var = question["variable"]
            assert re.search(rf"\b{var}\b", playbook) or re.search(rf"^{var}:", roles, re.M), (
                f"{t['name']}: survey variable {var} is read by neither the playbook nor a role"
            )
            if question["type"] == "multiplechoice":
                assert question.get("default", question["choices"][0]) in question["choices"]


def test_schedules_launch_job_templates_with_a_start_and_a_rule():
    for schedule in CONTROLLER["controller_schedules"]:
        assert schedule["unified_job_template"] in {t["name"] for t in TEMPLATES}
        assert re.match(r"^DTSTART;TZID=\S+:\d{8}T\d{6} RRULE:FREQ=", schedule["rrule"])


def test_no_secret_is_written_in_the_description():
    for cred in CONTROLLER["controller_credentials"]:
        for key, value in cred["inputs"].items():
            if key in ("username",):
                continue
            assert re.fullmatch(r"\{\{ ocpizza_awx_\w+ \}\}", value), f"{cred['name']}.{key}"


# --- How a job reads its inventory ------------------------------------------


def job_environment() -> dict[str, str]:
    """The environment the "OC Pizza job environment" credential gives every job, on this machine."""
    ctype = next(
        c
        for c in CONTROLLER["controller_credential_types"]
        if c["name"] == "OC Pizza job environment"
    )
    return {k: v.replace(AWX_PROJECT, str(ROOT), 1) for k, v in ctype["injectors"]["env"].items()}


def run(*cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """An Ansible command of the .venv, from the repository root, without the caller's settings."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "OCPIZZA_"))}
    full.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **(env or {}))
    return testing.run([str(VENV_BIN / cmd[0]), *cmd[1:]], full)


@pytest.fixture(scope="module")
def awx(tmp_path_factory):
    """inventories/production with an encrypted-string vault, as the CLI and as an AWX job see it."""
    base = tmp_path_factory.mktemp("awx")
    inventory = base / "production"
    subprocess.run(
        ["cp", "-r", str(ROOT / "inventories" / "production"), str(inventory)], check=True
    )
    password = base / "vault-pass"
    password.write_text("awx-test-vault-password\n")
    secret = run(
        "ansible-vault",
        "encrypt_string",
        "--vault-password-file",
        str(password),
        "s3cret-value",
        "--name",
        "vault_awx_test_secret",
    )
    assert secret.returncode == 0, secret.stderr
    (inventory / "group_vars" / "all" / "vault.yml").write_text("---\n" + secret.stdout)
    # The inventory sync: no vault password (AWX gives an inventory source none).
    export = run("ansible-inventory", "-i", str(inventory), "--list", "--export")
    assert export.returncode == 0, export.stderr
    data = json.loads(export.stdout)
    script = base / "runner" / "inventory" / "hosts"
    script.parent.mkdir(parents=True)
    # The script AWX writes (BaseTask.write_inventory_file).
    script.write_text(
        f"#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint({json.dumps(data)!r})\n"
    )
    script.chmod(0o700)
    hosts = sorted(data["_meta"]["hostvars"]) or sorted(
        h for g in data.values() if isinstance(g, dict) for h in g.get("hosts", [])
    )
    return {"inventory": inventory, "script": script, "password": password, "hosts": hosts}


def hostvars(source: Path, env: dict[str, str] | None = None) -> dict[str, dict]:
    """{host: its variables} of an inventory source, as ansible-inventory --list resolves them."""
    res = run("ansible-inventory", "-i", str(source), "--list", env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["_meta"]["hostvars"]


# The job's inventory is a script: ansible.cfg must enable the script plugin
# (test_ansible_cfg_lets_a_job_read_its_inventory). Here it is enabled by
# hand, to look at the variables alone.
SCRIPT_ONLY = {"ANSIBLE_INVENTORY_ENABLED": "script"}


def test_a_job_sees_the_variables_ansible_playbook_sees(awx):
    assert awx["hosts"], "the export lists no host"
    cli = hostvars(awx["inventory"])
    job = hostvars(awx["script"], {**SCRIPT_ONLY, **job_environment()})
    assert sorted(job) == sorted(cli) == awx["hosts"]
    for host in awx["hosts"]:
        differ = sorted(
            k for k in cli[host].keys() | job[host].keys() if cli[host].get(k) != job[host].get(k)
        )
        assert differ == [], f"{host}: an AWX job would see other values for {differ}"


def test_without_the_job_environment_the_project_defaults_win(awx):
    # Why the job environment exists: the project's group_vars applied a
    # second time override production's own values.
    host = awx["hosts"][0]
    cli = hostvars(awx["inventory"])[host]
    job = hostvars(awx["script"], SCRIPT_ONLY)[host]
    assert job["ocpizza_do_vpc_ip_range"] != cli["ocpizza_do_vpc_ip_range"]


def test_a_job_decrypts_the_vault_strings_with_its_vault_credential(awx):
    res = run(
        "ansible",
        "-i",
        str(awx["script"]),
        awx["hosts"][0],
        "-c",
        "local",
        "-m",
        "ansible.builtin.debug",
        "-a",
        "var=vault_awx_test_secret",
        "--vault-password-file",
        str(awx["password"]),
        env={**SCRIPT_ONLY, **job_environment()},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "s3cret-value" in res.stdout


def test_ansible_cfg_lets_a_job_read_its_inventory(awx):
    config = configparser.ConfigParser()
    config.read(ROOT / "ansible.cfg")
    enabled = [p.strip() for p in config.get("inventory", "enable_plugins").split(",")]
    if "script" not in enabled:
        pytest.skip(
            "ansible.cfg's [inventory] enable_plugins lacks `script`: an AWX job cannot read "
            "the inventory AWX gives it (docs/awx.md, 'The job environment')"
        )
    res = run("ansible-inventory", "-i", str(awx["script"]), "--list", env=job_environment())
    assert res.returncode == 0, res.stderr
    assert set(json.loads(res.stdout)["_meta"]["hostvars"]) == set(awx["hosts"])
