"""Bad inputs of roles monitoring and exporters stop before any change, naming the variable.

The same harness as the bad-input catalog (tests/catalog/role_inputs.yml, the
production inventory filled in with every host at a closed port): the role's
argument spec and validate.yml run on the control node; a run that got past
them would show its host as unreachable. The controls prove the rows are not
vacuous: with valid inputs the same runs reach the first connection.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from test_bad_input_catalog import HARNESS, catalog_inventory, recap, run

# The hosts each role's rows run on (the controls: every tier of the role).
TIERS = {"monitoring": "monitoring", "exporters": "dbservers:webservers"}
VALID = {
    "vault_mysql_exporter_password": "exp0rter-p4ssword",
    "vault_alertmanager_webhook_url": "https://hooks.ocpizza.com/alerts",
}
# (id, role, variable, bad value, what the message says); the hosts: the role's tier,
# or those the variable concerns (the MySQL exporter's password: the database hosts).
ROWS: list[tuple[str, str, str, Any, str]] = [
    (
        "webhook-ftp",
        "monitoring",
        "monitoring_alert_webhook_url",
        "ftp://hooks.ocpizza.com/a",
        "http(s) URL",
    ),
    # No webhook at all: no default may send the alerts nowhere.
    (
        "webhook-missing",
        "monitoring",
        "vault_alertmanager_webhook_url",
        "",
        "(from vault_alertmanager_webhook_url) must be an http(s) URL",
    ),
    (
        "public-listen",
        "monitoring",
        "monitoring_listen_address",
        "198.51.100.7",
        "loopback or private",
    ),
    (
        "site-address-name",
        "monitoring",
        "monitoring_site_address",
        "lb.ocpizza.com",
        "an IP address",
    ),
    ("probe-interval", "monitoring", "monitoring_probe_interval", "10 seconds", "=10 seconds"),
    (
        "exporter-password",
        "exporters",
        "vault_mysql_exporter_password",
        "p@ss/word?12",
        "at least 12",
    ),
    (
        "nginx-status-public",
        "exporters",
        "exporters_nginx_status_url",
        "http://10.0.0.5/stub_status",
        "on loopback",
    ),
]


HOSTS = {"exporter-password": "dbservers", "nginx-status-public": "webservers"}


def argv(inventory: Path, role: str, extra: dict[str, Any], hosts: str = "") -> list[str]:
    return [
        "ansible-playbook", "-i", str(inventory), str(HARNESS),
        "-e", f"catalog_role={role}", "-e", f"catalog_hosts={hosts or TIERS[role]}",
        "-e", json.dumps({**VALID, **extra}),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """Every row and control, run once, 4 at a time."""
    tmp = tmp_path_factory.mktemp("monitoring-inputs")
    inventory = catalog_inventory(tmp / "inventory")
    jobs = {r[0]: argv(inventory, r[1], {r[2]: r[3]}, HOSTS.get(r[0], "")) for r in ROWS}
    jobs |= {f"control-{role}": argv(inventory, role, {}) for role in TIERS}
    # The vault example's empty exporter password turns the MySQL exporter off: no refusal.
    jobs["control-exporters-off"] = argv(
        inventory, "exporters", {"vault_mysql_exporter_password": ""}, "dbservers"
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(run, cmd, tmp) for key, cmd in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize(
    ("id", "role", "variable", "value", "says"), ROWS, ids=[r[0] for r in ROWS]
)
def test_a_bad_input_stops_before_any_change_naming_the_variable(
    id: str, role: str, variable: str, value: Any, says: str, results: dict
) -> None:
    rc, output = results[id]
    text = " ".join(output.split())
    assert rc != 0, f"{id}: the run passed\n{text[-1500:]}"
    assert variable in text and says in text, (
        f"{id}: expected {variable} / {says!r}\n{text[-1500:]}"
    )
    counters = recap(output)
    assert counters, text[-1500:]
    for host, c in counters.items():
        assert c.get("changed", 0) == 0 and c.get("unreachable", 0) == 0, f"{id}: {host} {c}"


@pytest.mark.parametrize("role", [*sorted(TIERS), "exporters-off"])
def test_valid_inputs_get_past_validation_to_the_first_connection(role: str, results) -> None:
    rc, output = results[f"control-{role}"]
    counters = recap(output)
    assert rc != 0
    assert any(c.get("unreachable", 0) for c in counters.values()), output[-3000:]
    assert all(c.get("failed", 0) == 0 and c.get("changed", 0) == 0 for c in counters.values())
