"""scripts/bench_speed.py and scripts/bench_http.py (make bench BENCH=speed), without a lab.

The parts that decide a figure are tested here: the recap counts, the
"Ansible's defaults" configuration (checked with ansible-config itself), the
goals and the table; bench_http.py against a local keep-alive server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_speed  # noqa: E402

RECAP = """
PLAY RECAP *********************************************************************
ocpizza-x-app1             : ok=60   changed=0    unreachable=0    failed=0    skipped=20   rescued=0    ignored=0
ocpizza-x-db1              : ok=50   changed=2    unreachable=0    failed=0    skipped=10   rescued=0    ignored=0
"""


def test_recap_counts_host_tasks_and_changes() -> None:
    recap = bench_speed.parse_recap(RECAP)
    assert set(recap) == {"ocpizza-x-app1", "ocpizza-x-db1"}
    assert bench_speed.host_tasks(recap) == 60 + 20 + 50 + 2 + 10
    assert bench_speed.changed(recap) == 2


def test_recap_of_text_without_one_is_empty() -> None:
    assert bench_speed.parse_recap("ok: [a]\nchanged: [b]\n") == {}


def _config(cfg: Path, plugin_type: str = "base") -> dict[str, object]:
    """ansible-config's effective values under one configuration file.

    For a plugin type, the values of its ssh plugin (connection) are returned.
    """
    env = dict(os.environ, ANSIBLE_CONFIG=str(cfg))
    for var in list(env):
        if var.startswith("ANSIBLE_") and var != "ANSIBLE_CONFIG":
            del env[var]
    out = subprocess.run(
        ["ansible-config", "dump", "-t", plugin_type, "--format", "json"],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    items = json.loads(out)
    if plugin_type != "base":
        items = next(entry["ssh"] for entry in items if "ssh" in entry)
    return {item["name"]: item["value"] for item in items if "name" in item}


def test_defaults_config_drops_the_speed_settings_and_keeps_the_rest(tmp_path: Path) -> None:
    cfg = tmp_path / "defaults.cfg"
    cfg.write_text(bench_speed.defaults_config((ROOT / "ansible.cfg").read_text(), ROOT))
    ours = _config(ROOT / "ansible.cfg")
    theirs = _config(cfg)
    ours_ssh = _config(ROOT / "ansible.cfg", "connection")
    theirs_ssh = _config(cfg, "connection")
    # The project's speed settings are on in ansible.cfg ...
    assert ours_ssh["pipelining"] is True
    assert "ControlPersist=120s" in ours_ssh["ssh_args"]
    assert ours["DEFAULT_GATHERING"] == "smart"
    assert ours["CACHE_PLUGIN"] == "jsonfile"
    # ... and Ansible's defaults in the copy.
    assert theirs_ssh["pipelining"] is False
    assert theirs_ssh["ssh_args"] == "-C -o ControlMaster=auto -o ControlPersist=60s"
    assert theirs["DEFAULT_GATHERING"] == "implicit"
    assert theirs["CACHE_PLUGIN"] == "memory"
    assert theirs["DEFAULT_FORKS"] == 5
    # What the project needs to run at all stays, its paths absolute.
    assert theirs["DEFAULT_ROLES_PATH"] == [str(ROOT / "roles")]
    assert theirs["DEFAULT_HOST_LIST"] == [str(ROOT / "inventories/lab")]
    assert theirs["VARIABLE_PLUGINS_ENABLED"] == ours["VARIABLE_PLUGINS_ENABLED"]
    assert theirs["INVENTORY_ENABLED"] == ours["INVENTORY_ENABLED"]


def test_goals_and_table() -> None:
    figs = [
        bench_speed.Figure("a", "deploy", 21.04, "s", "<= 20 s", bench_speed.at_most(21.04, 20)),
        bench_speed.Figure("b", "ratio", 0.9, "x", ">= 0.85x", bench_speed.at_least(0.9, 0.85)),
        bench_speed.Figure("c", "fresh", None, "s", "<= 5 min", None),
    ]
    assert [f.met for f in figs] == [False, True, None]
    before = {"a": bench_speed.Figure("a", "deploy", 28.0, "s")}
    table = bench_speed.render_table(figs, before).splitlines()
    assert table[0].startswith("| figure | before | now | goal | met |")
    assert "| deploy | 28.0 s | 21.0 s | <= 20 s | NO |" in table[2]
    assert "| ratio | - | 0.90x | >= 0.85x | yes |" in table[3]
    assert "not measured" in table[4]
    assert bench_speed.ratio(3.0, 0) is None
    assert bench_speed.ratio(None, 2.0) is None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hosts: list[str] = []  # noqa: RUF012

    def do_GET(self) -> None:
        self.hosts.append(self.headers["Host"])
        body = b"ok\n" if self.path == "/healthz" else b"no\n"
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()


def _bench_http(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_http.py"), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return json.loads(out)


def test_bench_http_keeps_its_connections_and_counts_2xx(server: int) -> None:
    res = _bench_http(
        f"http://127.0.0.1:{server}/healthz",
        "--host",
        "www.bench.test",
        "--clients",
        "2",
        "--duration",
        "0.5",
    )
    assert res["ok"] == res["requests"] > 0
    assert res["reconnects"] == 0 and res["errors"] == 0
    assert res["rps"] > 0
    assert set(_Handler.hosts) == {"www.bench.test"}


def test_bench_http_counts_other_statuses_apart(server: int) -> None:
    res = _bench_http(
        f"http://127.0.0.1:{server}/nope", "--host", "x", "--clients", "1", "--duration", "0.3"
    )
    assert res["ok"] == 0 and res["other"] == res["requests"] > 0
    assert res["rps"] == 0.0
