"""Issue 15: findings closed in playbooks and roles, checked without a host.

Finding 15: verify.yml reports which optional services are configured by the
names of their settings only. Finding 9: static_publish writes no predictable
path under /tmp or /var/tmp. (Findings 4, 13 and 18 are input checks: they are
rows of the bad-input catalog, tests/unit/test_bad_input_catalog.py.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def tasks(path: Path) -> list[dict[str, Any]]:
    """Every task of a playbook or task file, blocks opened."""
    data = yaml.safe_load(path.read_text()) or []
    found: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            found.append(item)
            for key in ("tasks", "pre_tasks", "post_tasks", "block", "rescue", "always"):
                walk(item.get(key) or [])

    walk(data)
    return found


def render(value: Any, variables: dict[str, Any]) -> Any:
    """A task argument as Ansible renders it (the filters these tasks use)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["flatten"] = lambda v: [x for sub in v for x in sub]
    if isinstance(value, list):
        return [render(v, variables) for v in value]
    return env.from_string(value).render(**variables)


def test_verify_reads_the_names_of_the_optional_settings_never_their_values(tmp_path: Path):
    # verify.yml runs role monitoring's verify entry point on the app servers.
    entry = REPO / "roles" / "monitoring" / "tasks" / "verify.yml"
    (task,) = [
        t for t in tasks(entry) if "optional" in t["name"] and "ansible.builtin.command" in t
    ]
    services = yaml.safe_load((REPO / "roles" / "monitoring" / "vars" / "main.yml").read_text())[
        "monitoring__optional_services"
    ]
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "SECRET_KEY=django-secret-value\n"
        "SENTRY_DSN=https://Kpublic@o1.ingest.sentry.io/4\n"
        "PAYPAL_CLIENT_ID=Zclient\n"
        "PAYPAL_CLIENT_SECRET=Xsecret\n"
        "GOOGLE_MAPS_API_KEY=\n"
    )
    argv = render(
        task["ansible.builtin.command"]["argv"],
        {"monitoring__optional_services": services, "ocpizza_app_env_file": str(env_file)},
    )
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    # The names of the settings that hold a value, and not one character of a value.
    assert out.splitlines() == ["SENTRY_DSN", "PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET"]
    assert "=" not in out
    # The table reads the services' states the entry point derives from these names.
    table = (REPO / "playbooks" / "templates" / "verify-table.j2").read_text()
    assert "monitoring_optional_services" in table


def static_publish_task_files() -> list[Path]:
    return sorted((REPO / "roles" / "static_publish").rglob("*.yml"))


@pytest.mark.parametrize(
    "path", static_publish_task_files(), ids=lambda p: str(p.relative_to(REPO / "roles"))
)
def test_static_publish_writes_no_predictable_temporary_path(path: Path):
    """Finding 9: a root-written file at a fixed /tmp or /var/tmp path can be
    pre-created (or linked) by another local user; the role uses private
    temporary directories (ansible.builtin.tempfile, mktemp) instead."""
    text = path.read_text()
    fixed = re.findall(r"/(?:var/)?tmp/[A-Za-z0-9{][^\s\"']*", text)
    assert fixed == [], f"{path.relative_to(REPO)} writes fixed temporary paths: {fixed}"
