"""Static checks of the staging CI workflow (.github/workflows/staging.yml)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "staging.yml"
SECRET_EXPRESSION = re.compile(r"^\$\{\{ secrets\.[A-Z][A-Z0-9_]* \}\}$")
SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|SECRET|PRIVATE_KEY|API_KEY)", re.IGNORECASE)


@pytest.fixture(scope="module")
def text():
    return WORKFLOW.read_text()


@pytest.fixture(scope="module")
def workflow(text):
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def steps(workflow):
    (job,) = workflow["jobs"].values()
    return job["steps"]


def walk(node, path=()):
    """Every (path, key, value) of the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, index))


def step_running(steps, playbook):
    found = [i for i, s in enumerate(steps) if f"playbooks/{playbook}" in s.get("run", "")]
    assert len(found) == 1, f"exactly one step must run {playbook}"
    return found[0]


def test_it_is_a_valid_workflow(workflow):
    # PyYAML reads the bare key `on` as True (YAML 1.1).
    triggers = workflow.get("on", workflow.get(True))
    assert "workflow_dispatch" in triggers
    teardown = triggers["workflow_dispatch"]["inputs"]["teardown"]
    assert teardown["type"] == "boolean" and teardown["default"] is False
    assert workflow["name"]
    for name, job in workflow["jobs"].items():
        assert job["runs-on"], name
        assert job["timeout-minutes"] <= 90, name
        for step in job["steps"]:
            assert step.get("name"), step
            assert ("uses" in step) != ("run" in step), step["name"]
            if "uses" in step:
                # Pinned by commit (finding 7): tests/unit/test_workflow_staging.py.
                assert re.match(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$", step["uses"]), step["uses"]


def test_steps_run_provision_site_verify_then_teardown_if_asked(steps):
    order = [
        step_running(steps, p)
        for p in ("provision.yml", "site.yml", "verify.yml", "deprovision.yml")
    ]
    assert order == sorted(order)
    for playbook in ("provision.yml", "site.yml", "verify.yml", "deprovision.yml"):
        assert "-i inventories/staging" in steps[step_running(steps, playbook)]["run"]
    teardown = steps[order[-1]]
    assert "inputs.teardown" in teardown["if"]
    assert "always()" in teardown["if"]  # also after a failed deploy
    assert "-e confirm_destroy=staging" in " ".join(teardown["run"].split())
    for index in order[:-1]:
        assert "if" not in steps[index]


def test_secrets_come_only_from_the_secret_store(workflow):
    for path, key, value in walk(workflow):
        if isinstance(value, str) and "secrets." in value:
            assert path and path[-1] == "env", f"secret used outside an env mapping: {key}"
            assert SECRET_EXPRESSION.match(value), f"{key}: {value!r}"
        if path and path[-1] == "env" and SECRET_NAME.search(str(key)):
            assert SECRET_EXPRESSION.match(str(value)), f"{key} must come from secrets.*"


def test_no_plaintext_secret_is_written_in_it(text):
    assert "-----BEGIN" not in text
    assert not re.search(r"dop_v1_[0-9a-f]{20,}", text)  # DigitalOcean token format
    # Any long hex string, except the commits the actions are pinned by.
    assert not re.search(
        r"\b[0-9a-f]{40,}\b", re.sub(r"(?m)^(\s*uses: \S+@)[0-9a-f]{40}", r"\1", text)
    )
    assert not re.search(r"(?i)(token|password)\s*[:=]\s*['\"]?[A-Za-z0-9/+]{16,}", text)


def test_the_token_reaches_the_playbooks_through_the_environment(workflow, steps):
    (job,) = workflow["jobs"].values()
    # Only the steps that run a playbook have it (finding 7: test_workflow_staging.py).
    for playbook in ("provision.yml", "site.yml", "verify.yml", "deprovision.yml"):
        env = steps[step_running(steps, playbook)]["env"]
        assert env["DIGITALOCEAN_TOKEN"] == "${{ secrets.DIGITALOCEAN_TOKEN }}"
    assert job.get("environment") == "staging"


def test_one_run_at_a_time_and_least_privilege(workflow):
    assert workflow["concurrency"]["group"] == "staging"
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["permissions"] == {"contents": "read"}


def test_the_files_it_runs_exist():
    for path in (
        "playbooks/provision.yml",
        "playbooks/deprovision.yml",
        "inventories/staging/digitalocean.yml",
        "requirements.txt",
        "requirements.yml",
    ):
        assert (REPO / path).is_file(), path
