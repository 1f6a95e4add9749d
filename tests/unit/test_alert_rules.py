"""The alert rules of role monitoring, rendered with the role's defaults, checked
and unit-tested by Prometheus's own ``promtool`` (Debian 12's 2.42, installed
on the control node by scripts/promtool.sh).

- ``promtool check rules``: the rendered file is valid (expressions and
  annotation templates parse);
- every rule carries ``for:``, a severity and the annotations an operator
  reads (summary, description, runbook), and has tests in
  tests/promtool/ocpizza_rules_test.yml that see it fire and stay silent;
- ``promtool test rules`` on that file: each alert fires when its condition has
  held long enough, stays silent just below its threshold, and resolves;
  ocpizza_rules_annotations_test.yml checks the annotations' rendered text;
- the tests can fail: a rule rendered with another threshold fails them.

A missing promtool fails these tests (never a silent skip).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/monitoring"
TESTS = ROOT / "tests/promtool"
BEHAVIOUR_TESTS = TESTS / "ocpizza_rules_test.yml"
ANNOTATION_TESTS = TESTS / "ocpizza_rules_annotations_test.yml"
RULES_NAME = "ocpizza.rules.yml"
SEVERITIES = {"critical", "warning"}
ANNOTATIONS = {"summary", "description", "runbook"}


def promtool() -> str:
    """The promtool to use: on PATH, else where scripts/promtool.sh puts it."""
    for candidate in (
        shutil.which("promtool"),
        ROOT / ".venv/bin/promtool",
        ROOT / ".ansible/tools/bin/promtool",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("promtool not found: run `bash scripts/promtool.sh` (make setup runs it)")


def render_rules(overrides: dict[str, Any] | None = None) -> str:
    """roles/monitoring/templates/ocpizza.rules.yml.j2 rendered by Ansible's
    templating with the role's defaults (and ``overrides``)."""
    variables = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    variables["ansible_managed"] = "Ansible managed"
    variables.update(overrides or {})
    templar = Templar(loader=DataLoader(), variables=variables)
    source = (ROLE / "templates/ocpizza.rules.yml.j2").read_text()
    return str(templar.template(trust_as_template(source), escape_backslashes=False))


def rules(text: str) -> list[dict[str, Any]]:
    """Every alerting rule of a rendered rules file."""
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


def without_annotations(text: str) -> str:
    """The rules file minus its annotations (the behaviour tests' copy)."""
    data = yaml.safe_load(text)
    for group in data["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return yaml.safe_dump(data, sort_keys=False)


def run_promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """promtool with ``args`` in ``cwd``; its output is kept for the failure message."""
    return subprocess.run(
        [promtool(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def promtool_test(
    tmp_path: Path, rules_text: str, test_file: Path
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` of ``test_file`` against ``rules_text``."""
    (tmp_path / RULES_NAME).write_text(rules_text)
    shutil.copy(test_file, tmp_path / test_file.name)
    return run_promtool("test", "rules", test_file.name, cwd=tmp_path)


@pytest.fixture(scope="module")
def rendered() -> str:
    """The rules file as the role installs it with its defaults."""
    return render_rules()


def test_promtool_check_rules(rendered: str, tmp_path: Path) -> None:
    (tmp_path / RULES_NAME).write_text(rendered)
    result = run_promtool("check", "rules", RULES_NAME, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules(rendered))} rules found" in result.stdout


def test_every_rule_is_complete_and_tested(rendered: str) -> None:
    tests = yaml.safe_load(BEHAVIOUR_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = [rule["alert"] for rule in rules(rendered)]
    assert len(names) == len(set(names)), "two rules share a name"
    for rule in rules(rendered):
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no for:"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        assert set(rule.get("annotations", {})) >= ANNOTATIONS, f"{name}: annotations"
        assert all(str(rule["annotations"][key]).strip() for key in ANNOTATIONS), name
        assert name in fires, f"{name}: no test sees it fire"
        assert name in silent, f"{name}: no test sees it silent (below threshold, resolved)"
    # The expected alerts name only rules that exist.
    assert fires | silent <= set(names)


def test_rules_fire_stay_silent_and_resolve(rendered: str, tmp_path: Path) -> None:
    result = promtool_test(tmp_path, without_annotations(rendered), BEHAVIOUR_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_annotations_read_well(rendered: str, tmp_path: Path) -> None:
    result = promtool_test(tmp_path, rendered, ANNOTATION_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        {"monitoring_alert_disk_used_percent": 83},
        {"monitoring_alert_memory_available_percent": 12},
        {"monitoring_alert_backup_max_age_hours": 25},
        {"monitoring_alert_cert_expiry_days": 13},
        {"monitoring_alert_replication_lag_seconds": 500},
        {"monitoring_alert_http_5xx_ratio": 0.03},
        {"monitoring_alert_gunicorn_restarts": 2},
        {"monitoring_alert_host_down_for": "1m"},
        {"monitoring_alert_site_down_for": "5m"},
        {"monitoring_alert_systemd_failed_for": "2m"},
    ],
    ids=lambda overrides: next(iter(overrides)),
)
def test_the_tests_catch_another_threshold(overrides: dict[str, Any], tmp_path: Path) -> None:
    """The tests pin each threshold and duration: rendered with another value,
    they fail."""
    result = promtool_test(tmp_path, without_annotations(render_rules(overrides)), BEHAVIOUR_TESTS)
    assert result.returncode != 0, f"the rule tests still pass with {overrides}"
    assert "FAILED" in result.stdout + result.stderr
