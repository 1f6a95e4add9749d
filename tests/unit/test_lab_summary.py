"""make demo's closing summary (roles/lab/tasks/summary.yml): where everything answers.

The HA lab has a monitoring host whose Prometheus and Alertmanager listen on
loopback only: the summary gives the SSH tunnel that reaches them, with role
monitoring's ports. The small lab has none, and says nothing about it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def summary(topology: str) -> str:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    res = subprocess.run(
        [
            "ansible", "-i", "inventories/lab", "localhost", "--playbook-dir", "playbooks",
            "-m", "ansible.builtin.include_role", "-a", "name=lab tasks_from=summary",
            "-e", f"lab_topology={topology}",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res.stdout


@pytest.mark.parametrize("topology", ["ha", "small"])
def test_the_summary_says_how_to_reach_prometheus_and_alertmanager(topology: str) -> None:
    out = summary(topology)
    lab = yaml.safe_load((REPO / "inventories/lab/group_vars/all/lab.yml").read_text())
    mon = [h for h in lab["lab_topologies"][topology] if h["group"] == "monitoring"]
    lines = [line.strip() for line in out.splitlines() if "Monitoring:" in line]
    if not mon:
        assert lines == [], lines
        return
    defaults = yaml.safe_load((REPO / "roles/monitoring/defaults/main.yml").read_text())
    prom, am = defaults["monitoring_prometheus_port"], defaults["monitoring_alertmanager_port"]
    (line,) = lines
    assert f"-L {prom}:127.0.0.1:{prom} -L {am}:127.0.0.1:{am}" in line, line
    assert "-N " in line and "id_ed25519" in line, line
    # The monitoring host's address (the lab's network prefix is templated).
    assert line.split(" root@")[1].startswith(tuple("0123456789")), line
    assert line.split(" root@")[1].split(",")[0].endswith("." + mon[0]["ip"].rsplit(".", 1)[1])
    assert f"Prometheus: http://127.0.0.1:{prom}/" in line
    assert f"Alertmanager: http://127.0.0.1:{am}/" in line
