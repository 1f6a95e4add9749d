"""Scale out (issue 13, operation 6): a new app server and a new web server join under load.

The lab creates two extra hosts (``OCPIZZA_LAB_EXTRA=app3,web3``: ``.23`` in
``appservers``, ``.33`` in ``webservers``); this module adds them to its OWN
copy of the platform inventory (the shared one keeps two app and two web
servers for the other modules) and runs the documented procedure under load:

  1. ``site.yml --limit 'dbservers,<new servers>'``: built, out of service
     (the database admits the new app server first; the starting data is NOT
     imported again: a price changed in the database stays; the new web
     server gets the live release's static files, no new release);
  2. ``site.yml --limit 'appservers,webservers,loadbalancers'``: the app
     servers admit the new web server (firewall; gunicorn's trusted proxies,
     a graceful reload), every nginx upstream gains the new app server, then
     the load balancer gains the new web server.

Leaving (shared inventory, without them): ``site.yml
--limit webservers,loadbalancers`` (out of the LB and the upstreams), then
``site.yml --limit dbservers,appservers`` (out of their peers' settings),
then the lab removes them. Every phase: 0 failed requests. The module runs in
``make test-full`` (about 9 min on a quiet machine: over make test's budget).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from conftest import KEEP, Platform, recap, run_logged
from loadclient import under_load

# The extra hosts of the lab (roles/lab: lab_extra_host_choices): short name
# -> (group, inventory name as production would name it, last number of the address).
EXTRA = {
    "app3": ("appservers", "app3.ocpizza.com", 23),
    "web3": ("webservers", "web3.ocpizza.com", 33),
}
PIZZA = "Margherita"


@dataclass
class ScaleOut:
    """The platform, its inventories with the extra hosts, and what the test changed."""

    platform: Platform
    inventory: Path
    price: str = ""
    joined: bool = False
    left: bool = False
    destroyed: bool = False

    def site(self, inventory: Path, *args: str, log: str) -> subprocess.CompletedProcess[str]:
        """site.yml on an inventory, logged in .ansible/logs."""
        cmd = ["ansible-playbook", "-i", str(inventory), "playbooks/site.yml", *args]
        res = run_logged(cmd, log, self.platform.env())
        assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout[-4000:]}"
        return res

    def container(self, short: str) -> str:
        return f"{self.platform.prefix}-{short}"


def lab_extra(platform: Platform, extra: str, log: str) -> None:
    """playbooks/lab.yml with OCPIZZA_LAB_EXTRA=extra (empty: the extra hosts are removed)."""
    env = platform.env()
    env["OCPIZZA_LAB_EXTRA"] = extra
    res = run_logged(["ansible-playbook", "playbooks/lab.yml"], log, env)
    assert res.returncode == 0, f"lab.yml (extra {extra!r}) failed:\n{res.stdout[-3000:]}"


def forget_facts(platform: Platform) -> None:
    """Drop the cached facts of the extra hosts' inventory names (a new container is a new host)."""
    names = tuple(name for _, name, _ in EXTRA.values())
    for path in (platform.lab_dir / "facts").glob("*"):
        if path.name.endswith(names):
            path.unlink()


def inventory_with(platform: Platform, target: Path, shorts: tuple[str, ...]) -> Path:
    """A copy of the platform inventory with the extra hosts ``shorts`` in their groups."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(platform.inventory, target)
    hosts = yaml.safe_load((target / "hosts.yml").read_text())
    net = platform.ip(platform.groups["appservers"][0]).rsplit(".", 1)[0]
    for short in shorts:
        group, name, last = EXTRA[short]
        ip = f"{net}.{last}"
        hosts["all"]["children"][group]["hosts"][name] = {
            "ansible_host": ip,
            "ocpizza_private_ip": ip,
        }
    (target / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    return target


def sql(platform: Platform, query: str) -> str:
    """A query on the database server as its root (socket), the output without headers."""
    db = platform.host(platform.groups["dbservers"][0])
    return db.check_output(f"mysql -N -B oc_pizza -e {query!r}").strip()


def static_path(platform: Platform) -> str:
    """A hashed static file the admin's login page references (the home page has none)."""
    code, body = platform.curl("/admin/login/")
    assert code == "200", body[-500:]
    found = re.findall(r'(/static/[^"\'\s>]+)', body)
    assert found, "the admin's login page references no /static/ file"
    return found[0]


def count_lines(host: testinfra.host.Host, path_glob: str, pattern: str) -> int:
    """How many lines of the files path_glob contain pattern (0 when none)."""
    out = host.run(f"cat {path_glob} 2>/dev/null | grep -c -- {pattern!r} || true")
    return int(out.stdout.strip() or 0)


def leave(scale: ScaleOut) -> None:
    """The leave procedure, on the shared inventory: LB and upstreams first, then their peers."""
    base = scale.platform.inventory
    scale.site(base, "--limit", "webservers,loadbalancers", log="scale-out-leave-1.log")
    scale.site(base, "--limit", "dbservers,appservers", log="scale-out-leave-2.log")
    scale.left = True


# make test-full: two hosts built from scratch and two site.yml runs, about 9 min
# on a quiet machine, over make test's budget.
pytestmark = pytest.mark.full


@pytest.fixture(scope="module")
def scale(platform: Platform) -> Iterator[ScaleOut]:
    """The extra hosts created by the lab; at the end destroyed (after the leave procedure
    when the lab outlives the run), the price restored."""
    state = ScaleOut(
        platform=platform,
        inventory=inventory_with(platform, platform.lab_dir / "scale-out", tuple(EXTRA)),
    )
    state.price = sql(platform, f"SELECT price FROM shop_pizza WHERE name='{PIZZA}'")
    forget_facts(platform)
    lab_extra(platform, ",".join(EXTRA), "scale-out-lab.log")
    try:
        yield state
    finally:
        sql(platform, f"UPDATE shop_pizza SET price={state.price} WHERE name='{PIZZA}'")
        try:
            if state.joined and not state.left and KEEP:
                leave(state)
        finally:
            if not state.destroyed:
                lab_extra(platform, "", "scale-out-lab-destroy.log")
            forget_facts(platform)


@pytest.fixture(scope="module")
def joined(scale: ScaleOut) -> dict[str, Any]:
    """The procedure under load; what it left: the runs, the load, the requests each new host served."""
    platform = scale.platform
    app, web = EXTRA["app3"][1], EXTRA["web3"][1]
    changed = f"{float(scale.price) + 1.11:.2f}"
    sql(platform, f"UPDATE shop_pizza SET price={changed} WHERE name='{PIZZA}'")
    imports = sql(platform, "SELECT COUNT(*) FROM shop_resourceimport")
    static = static_path(platform)
    app3 = platform.host(scale.container("app3"))
    web3 = platform.host(scale.container("web3"))
    started = time.monotonic()
    with under_load(platform, max_seconds=3000, paths=("/", "/healthz", static)) as load:
        scale.joined = True
        built = scale.site(
            scale.inventory, "--limit", f"dbservers,{app},{web}", log="scale-out-1.log"
        )
        static_before_lb = web3.file(f"/var/www/ocpizza{static}").exists
        scale.site(
            scale.inventory, "--limit", "appservers,webservers,loadbalancers", log="scale-out-2.log"
        )
        # In service once the load balancer's health checks find the new web server
        # up (a few seconds): visitors' requests reach both new hosts.
        before = {
            "app3": count_lines(app3, "/var/log/ocpizza/*.log", '"GET '),
            "web3": count_lines(web3, "/var/log/nginx/access.log", "GET /static/"),
        }
        served = {"app3": 0, "web3": 0}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(served.values()):
            for _ in range(10):
                platform.curl("/")
                platform.curl(static)
            served = {
                "app3": count_lines(app3, "/var/log/ocpizza/*.log", '"GET ') - before["app3"],
                "web3": count_lines(web3, "/var/log/nginx/access.log", "GET /static/")
                - before["web3"],
            }
    print(f"scale-out join: {time.monotonic() - started:.0f} s, load {load.summary()}")
    return {
        "built": built,
        "load": load,
        "served": served,
        "changed": changed,
        "imports": imports,
        "static": static,
        "static_before_lb": static_before_lb,
    }


def test_new_servers_join_under_load_with_no_failed_request(joined: dict[str, Any]) -> None:
    load = joined["load"]
    assert load.report["failed"] == 0, load.failures_text()


def test_the_new_app_server_serves_without_importing_the_starting_data_again(
    scale: ScaleOut, joined: dict[str, Any]
) -> None:
    platform = scale.platform
    assert recap(joined["built"].stdout)[EXTRA["app3"][1]]["failed"] == 0
    assert joined["imports"] != "0", "the first converge recorded no import of the starting data"
    # The new app server did not import the starting data over the live database.
    assert sql(platform, f"SELECT price FROM shop_pizza WHERE name='{PIZZA}'") == joined["changed"]
    assert sql(platform, "SELECT COUNT(*) FROM shop_resourceimport") == joined["imports"]
    assert joined["served"]["app3"] > 0, (
        "app3 is in every upstream but its gunicorn logged no request"
    )


def test_the_new_web_server_serves_the_live_static_files_without_a_new_release(
    joined: dict[str, Any],
) -> None:
    assert joined["static_before_lb"], "web3 lacked the live static files when it was built"
    assert joined["served"]["web3"] > 0, (
        f"web3 is behind the load balancer but served no {joined['static']}"
    )


def test_new_servers_leave_service_under_load_and_are_destroyed(
    scale: ScaleOut, joined: dict[str, Any]
) -> None:
    """Out of the LB and the upstreams, then out of their peers' settings: 0 failed; destroyed."""
    platform = scale.platform
    started = time.monotonic()
    with under_load(platform, max_seconds=2400) as load:
        leave(scale)
    print(f"leave: {time.monotonic() - started:.0f} s, load {load.summary()}")
    assert load.report["failed"] == 0, load.failures_text()
    lab_extra(platform, "", "scale-out-lab-destroy.log")
    scale.destroyed = True
    for short in EXTRA:
        gone = subprocess.run(
            ["podman", "container", "exists", scale.container(short)], check=False
        )
        assert gone.returncode != 0, f"{scale.container(short)} still exists"
    assert platform.curl("/healthz")[0] == "200"
