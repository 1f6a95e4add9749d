"""The restore report (roles/mysql_backup/tasks/restore_switch.yml), rendered by Ansible's templating.

Issue 13: the report printed ``\\1 -; \\1 -; ...`` where it meant the views,
triggers, routines and events restored (a ``regex_replace('^(.*)$', '\\\\1 ')``
whose back-reference reached the output). These tests render the task's
message exactly as ansible-playbook does, from the tool's JSON result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "roles" / "mysql_backup" / "tasks" / "restore_switch.yml"


def _trusted(value: Any) -> Any:
    """Task text as the playbook loader hands it to the templar (trusted as a template)."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    return value


def report(result: dict[str, Any]) -> list[str]:
    """The lines the "Say what was restored" task prints for the tool's ``result``."""
    tasks = yaml.safe_load(TASKS.read_text())
    (task,) = [t for t in tasks if t["name"].startswith("Say what was restored")]
    variables: dict[str, Any] = {
        "mysql_backup__restored": result,
        "inventory_hostname": "db1.example",
        "ansible_inventory_sources": ["/srv/inventories/production"],
    }
    variables.update(_trusted(task.get("vars", {})))
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(_trusted(task["ansible.builtin.debug"]["msg"]))


def result(**objects: list[str]) -> dict[str, Any]:
    """A restore-switch --json result with the given objects."""
    return {
        "id": "oc_pizza-20261130T080000Z",
        "time": "2026-11-30T08:00:03Z",
        "database": "oc_pizza",
        "tables": {"shop_order": 3, "shop_pizza": 12},
        "rows": 15,
        "objects": {k: objects.get(k, []) for k in ("views", "triggers", "routines", "events")},
        "safety": "oc_pizza-20261130T081500Z",
        "previous": None,
    }


def test_names_every_view_trigger_routine_and_event_restored():
    lines = report(
        result(
            views=["order_summary", "stock_view"],
            triggers=["order_ai"],
            routines=["FUNCTION pizza_total", "PROCEDURE place_order"],
            events=["nightly_cleanup"],
        )
    )
    assert lines[3] == (
        "views order_summary, stock_view; triggers order_ai; "
        "routines FUNCTION pizza_total, PROCEDURE place_order; events nightly_cleanup"
    )


def test_says_dash_for_a_kind_with_none():
    lines = report(result(views=["order_summary"]))
    assert lines[3] == "views order_summary; triggers -; routines -; events -"
    assert not any("\\1" in line for line in lines)


@pytest.mark.parametrize("previous", [None, "oc_pizza_pre_restore_20261130T081500Z"])
def test_reports_tables_rows_and_how_to_undo(previous):
    res = result()
    res["previous"] = previous
    lines = report(res)
    assert lines[0] == (
        "Restored backup oc_pizza-20261130T080000Z (taken 2026-11-30T08:00:03Z) "
        "into oc_pizza on db1.example."
    )
    assert lines[1] == "2 tables, 15 rows, each count checked against the manifest:"
    assert lines[2] == "shop_order: 3, shop_pizza: 12"
    assert lines[4].endswith(
        "UNDO with: ansible-playbook -i /srv/inventories/production playbooks/restore.yml"
        " -e backup=oc_pizza-20261130T081500Z"
    )
    assert (previous in lines[5]) if previous else lines[5] == ""
