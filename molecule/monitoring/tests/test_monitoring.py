"""Behaviour of roles exporters and monitoring (molecule/monitoring): Prometheus
scrapes the target's exporters, has loaded the alert rules, Alertmanager its
configuration; with the target's node exporter stopped, role monitoring's
check (verify.yml's) names it. Prometheus and Alertmanager answer on the
monitoring host's loopback only, the exporters on the target's private
address only. The live alert to a webhook is the platform run's
(tests/platform/test_94_alerts.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import testinfra

MON = "ocpizza-mol-monitoring-mon"
TARGET = "ocpizza-mol-monitoring-target"
# A scrape (5 s in this scenario), with room for a loaded machine.
SCRAPE_DEADLINE = 30


@pytest.fixture(scope="module")
def mon(get_host: Callable[[str], testinfra.host.Host]) -> testinfra.host.Host:
    return get_host(MON)


@pytest.fixture(scope="module")
def target(get_host: Callable[[str], testinfra.host.Host]) -> testinfra.host.Host:
    return get_host(TARGET)


def api(mon: testinfra.host.Host, url: str) -> Any:
    """GET an API URL on the monitoring host's loopback; the JSON answer."""
    out = mon.check_output("curl -sS --max-time 10 %s", url)
    return json.loads(out)


def query(mon: testinfra.host.Host, promql: str) -> list[dict[str, Any]]:
    """The instant vector Prometheus returns for ``promql``."""
    answer = api(mon, "http://127.0.0.1:9090/api/v1/query?query=" + urllib.parse.quote(promql))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(1)


def values(mon: testinfra.host.Host, promql: str) -> dict[str, float]:
    """{job/instance: value} of a query."""
    return {
        f"{r['metric'].get('job')}/{r['metric'].get('instance')}": float(r["value"][1])
        for r in query(mon, promql)
    }


def test_prometheus_scrapes_every_exporter_of_the_target(mon: testinfra.host.Host) -> None:
    expected = {
        f"node/{MON}",
        f"node/{TARGET}",
        f"mysqld/{TARGET}",
        f"prometheus/{MON}",
        f"alertmanager/{MON}",
    }

    def all_up() -> bool:
        up = values(mon, "up")
        return expected <= {k for k, v in up.items() if v == 1}

    wait_for(f"up == 1 for {sorted(expected)} (got {values(mon, 'up')})", all_up)
    # The MySQL exporter reaches the server with its own account.
    assert values(mon, "mysql_up") == {f"mysqld/{TARGET}": 1.0}


def test_the_textfile_metrics_reach_prometheus(
    mon: testinfra.host.Host, target: testinfra.host.Host
) -> None:
    # prepare.yml left one backup directory, named by its UTC time.
    (name,) = target.check_output("ls /var/backups/ocpizza").split()
    taken = datetime.strptime(name.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    stamp = wait_for(
        "ocpizza_backup_last_verified_timestamp_seconds",
        lambda: values(mon, "ocpizza_backup_last_verified_timestamp_seconds"),
    )
    assert stamp == {f"node/{TARGET}": taken.timestamp()}
    assert values(mon, "ocpizza_backup_verified_count") == {f"node/{TARGET}": 1.0}
    # gunicorn's start time is its process's: a restart changes it.
    promql = 'ocpizza_supervisor_program_start_time_seconds{program="gunicorn"}'
    before = wait_for(promql, lambda: values(mon, promql))[f"node/{TARGET}"]
    time.sleep(1.1)
    target.check_output("supervisorctl restart gunicorn")
    target.check_output("systemctl start ocpizza-metrics-supervisor.service")
    # Finding 12: both writers ran (above, and here) in their sandbox.
    for unit in ("ocpizza-metrics-supervisor", "ocpizza-metrics-backup"):
        props = dict(
            line.split("=", 1)
            for line in target.check_output(
                f"systemctl show {unit}.service -p ProtectSystem -p CapabilityBoundingSet"
                " -p RestrictAddressFamilies -p NoNewPrivileges -p ReadWritePaths"
            ).splitlines()
        )
        assert props == {
            "ProtectSystem": "strict",
            "CapabilityBoundingSet": "",
            "RestrictAddressFamilies": "AF_UNIX",
            "NoNewPrivileges": "yes",
            "ReadWritePaths": "/var/lib/prometheus/node-exporter",
        }, (unit, props)
    wait_for(
        "a new gunicorn start time after a restart",
        lambda: values(mon, promql).get(f"node/{TARGET}", before) > before,
        timeout=30,
    )


def test_the_alert_rules_are_loaded(mon: testinfra.host.Host) -> None:
    groups = api(mon, "http://127.0.0.1:9090/api/v1/rules?type=alert")["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert names == {
        "SiteDown",
        "HighHttp5xxRatio",
        "CertificateExpiresSoon",
        "GunicornRestarting",
        "HostDown",
        "DiskAlmostFull",
        "MemoryPressure",
        "SystemdUnitFailed",
        "BackupTooOld",
        "ReplicationLagHigh",
    }
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])


def test_alertmanager_has_loaded_its_configuration(mon: testinfra.host.Host) -> None:
    status = api(mon, "http://127.0.0.1:9093/api/v2/status")
    config = status["config"]["original"]
    assert "http://127.0.0.1:9099/alerts" in config
    assert "ops@ocpizza.example" in config
    # The SMTP password is in the file, never in the API's view of it.
    assert "smtp-s3cret" not in config
    assert status["cluster"]["status"] == "disabled"


def entry_points() -> dict[str, Any]:
    """Run entry_points.yml (role monitoring's check.yml and alerts.yml) with the
    scenario's inventory; what they found."""
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    binary = Path(sys.executable).parent / "ansible-playbook"
    playbook = Path(__file__).resolve().parent.parent / "entry_points.yml"
    out = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "entry_points.json"
    out.unlink(missing_ok=True)
    result = subprocess.run(
        [str(binary), "-i", str(inventory), str(playbook), "-e", f"entry_points_out={out}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return json.loads(out.read_text())


def test_check_names_the_target_that_is_down(
    mon: testinfra.host.Host, target: testinfra.host.Host
) -> None:
    # The check verify.yml runs (role monitoring's check.yml) names a target
    # Prometheus cannot scrape; alerts.yml (status.yml) answers from Alertmanager.
    target.check_output("systemctl stop prometheus-node-exporter")
    try:
        wait_for(
            "the target's node exporter seen down",
            lambda: values(mon, "up").get(f"node/{TARGET}") == 0.0,
            timeout=SCRAPE_DEADLINE,
        )
        result = entry_points()
        scrape = next(c for c in result["checks"] if c["name"] == "Prometheus scrapes every target")
        assert not scrape["ok"] and TARGET in scrape["detail"], scrape
        assert all(c["ok"] for c in result["checks"] if c is not scrape), result["checks"]
        assert isinstance(result["alerts"], list)
    finally:
        target.check_output("systemctl start prometheus-node-exporter")


def test_services_listen_where_they_should(
    mon: testinfra.host.Host, target: testinfra.host.Host
) -> None:
    mon_listening = mon.check_output("ss -Hltn")
    for port in (9090, 9093, 9115):
        assert f"127.0.0.1:{port} " in mon_listening, port
    target_ip = target.check_output("hostname -I").split()[0]
    target_listening = target.check_output("ss -Hltn")
    for port in (9100, 9104):
        assert f"{target_ip}:{port} " in target_listening, port
        assert f"0.0.0.0:{port} " not in target_listening and f"*:{port} " not in target_listening
    # From another host: Prometheus and Alertmanager refuse, the exporters answer.
    for port in (9090, 9093):
        assert target.run(f"curl -sS --max-time 5 http://{MON}:{port}/").rc != 0
    assert "node_exporter_build_info" in mon.check_output(
        "curl -sS --max-time 5 http://%s:9100/metrics", target_ip
    )
