"""Scale out (issue 13, operation 6): a new app server, then a new web server, join under load.

The lab creates two extra hosts (``OCPIZZA_LAB_EXTRA=app3,web3``: ``.23`` in
``appservers``, ``.33`` in ``webservers``); this module adds them to its OWN
copies of the platform inventory (the shared one keeps two app and two web
servers for the other modules) and runs the documented procedures under load.

A new app server (inventory + app3):
  1. ``site.yml --limit 'dbservers,<new app server>'``: built, out of service
     (the database admits its address first; the starting data is NOT
     imported again: a price changed in the database stays);
  2. ``site.yml --limit webservers``: every nginx upstream gains it.
A new web server (inventory + web3):
  1. ``site.yml --limit <new web server>``: built, out of service, with the
     live release's static files (no new release);
  2. ``site.yml --limit appservers --forks 1``: the app servers admit it
     (firewall, gunicorn's trusted proxies: gunicorn restarts, one app server
     at a time);
  3. ``site.yml --limit loadbalancers``: the load balancer gains it.
Leaving (shared inventory, without them): ``site.yml --limit
webservers,loadbalancers`` (out of the LB and the upstreams), then ``site.yml
--limit dbservers,appservers --forks 1`` (out of their peers' settings), then
the lab removes them. Every phase: 0 failed requests.

Opt-in (``OCPIZZA_PLATFORM_SCALE_OUT=1``): it adds two fresh hosts and seven
site.yml runs to the platform run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra
import yaml
from conftest import ROOT, Platform, recap, run_logged
from loadclient import under_load

# Opt-in: the module builds two hosts from scratch and runs site.yml seven
# times (measured: see the report of issue 13), too long for make test's budget.
pytestmark = pytest.mark.skipif(
    os.environ.get("OCPIZZA_PLATFORM_SCALE_OUT") != "1",
    reason="scale-out rehearsal: set OCPIZZA_PLATFORM_SCALE_OUT=1 to run it",
)

# The extra hosts of the lab (roles/lab: lab_extra_host_choices): short name
# -> (group, inventory name as production would name it, last number of the address).
EXTRA = {
    "app3": ("appservers", "app3.ocpizza.com", 23),
    "web3": ("webservers", "web3.ocpizza.com", 33),
}
PIZZA = "Margherita"
# Until site.yml's web play gives a new web server the live release's static
# files itself (role static_publish, entry point current), the procedure runs
# that entry point on it (written here, run after site.yml --limit <web>).
STATIC_HOOK = """- name: Give the new web server the live release's static files
  hosts: "{host}"
  become: true
  gather_facts: false
  tasks:
    - name: Publish the live release's static files to the web servers that lack them
      ansible.builtin.include_role:
        name: static_publish
        tasks_from: current
"""


@dataclass
class ScaleOut:
    """The platform, its inventories with the extra hosts, and what the test changed."""

    platform: Platform
    with_app: Path
    with_both: Path
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
    scale.site(base, "--limit", "dbservers,appservers", "--forks", "1", log="scale-out-leave-2.log")
    scale.left = True


@pytest.fixture(scope="module")
def scale(platform: Platform) -> Iterator[ScaleOut]:
    """The extra hosts created by the lab; at the end out of service and destroyed, price restored."""
    state = ScaleOut(
        platform=platform,
        with_app=inventory_with(platform, platform.lab_dir / "scale-out-app", ("app3",)),
        with_both=inventory_with(platform, platform.lab_dir / "scale-out-both", ("app3", "web3")),
    )
    state.price = sql(platform, f"SELECT price FROM shop_pizza WHERE name='{PIZZA}'")
    forget_facts(platform)
    lab_extra(platform, "app3,web3", "scale-out-lab.log")
    try:
        yield state
    finally:
        sql(platform, f"UPDATE shop_pizza SET price={state.price} WHERE name='{PIZZA}'")
        try:
            if state.joined and not state.left:
                leave(state)
        finally:
            if not state.destroyed:
                lab_extra(platform, "", "scale-out-lab-destroy.log")
            forget_facts(platform)


def test_new_app_server_joins_under_load_without_importing_again(scale: ScaleOut) -> None:
    """app3 built and added to every upstream: 0 failed; it serves; the edited price stays."""
    platform = scale.platform
    app = EXTRA["app3"][1]
    changed = f"{float(scale.price) + 1.11:.2f}"
    sql(platform, f"UPDATE shop_pizza SET price={changed} WHERE name='{PIZZA}'")
    imports = sql(platform, "SELECT COUNT(*) FROM shop_resourceimport")
    assert imports != "0", "the first converge recorded no import of the starting data"

    started = time.monotonic()
    with under_load(platform, clients=4, max_seconds=3000) as load:
        scale.joined = True
        built = scale.site(scale.with_app, "--limit", f"dbservers,{app}", log="scale-out-app-1.log")
        scale.site(scale.with_app, "--limit", "webservers", log="scale-out-app-2.log")
        app3 = platform.host(scale.container("app3"))
        before = count_lines(app3, "/var/log/ocpizza/*.log", '"GET ')
        for _ in range(20):
            platform.curl("/")
        served = count_lines(app3, "/var/log/ocpizza/*.log", '"GET ') - before
    print(f"app3 join: {time.monotonic() - started:.0f} s, load {load.summary()}")
    assert load.report["failed"] == 0, load.failures_text()

    assert recap(built.stdout)[app]["failed"] == 0
    # The new app server did not import the starting data over the live database.
    assert sql(platform, f"SELECT price FROM shop_pizza WHERE name='{PIZZA}'") == changed
    assert sql(platform, "SELECT COUNT(*) FROM shop_resourceimport") == imports
    assert served > 0, "app3 is in every upstream but its gunicorn logged no request"


def test_new_web_server_joins_under_load_with_the_live_static_files(scale: ScaleOut) -> None:
    """web3 built with the live release's static files, added to the LB: 0 failed; it serves them."""
    platform = scale.platform
    web = EXTRA["web3"][1]
    static = static_path(platform)
    hook = ROOT / "playbooks" / "site.yml"
    hooked = "tasks_from: current" in hook.read_text()
    started = time.monotonic()
    with under_load(platform, clients=4, max_seconds=3000, paths=("/", "/healthz", static)) as load:
        scale.site(scale.with_both, "--limit", web, log="scale-out-web-1.log")
        if not hooked:
            play = platform.lab_dir / "scale-out-static.yml"
            play.write_text(STATIC_HOOK.format(host=web))
            res = run_logged(
                ["ansible-playbook", "-i", str(scale.with_both), str(play)],
                "scale-out-web-static.log",
                platform.env(),
            )
            assert res.returncode == 0, res.stdout[-3000:]
        web3 = platform.host(scale.container("web3"))
        assert web3.file(f"/var/www/ocpizza{static}").exists, "web3 lacks the live static files"
        scale.site(
            scale.with_both, "--limit", "appservers", "--forks", "1", log="scale-out-web-2.log"
        )
        scale.site(scale.with_both, "--limit", "loadbalancers", log="scale-out-web-3.log")
        before = count_lines(web3, "/var/log/nginx/access.log", "GET /static/")
        for _ in range(20):
            platform.curl(static)
        served = count_lines(web3, "/var/log/nginx/access.log", "GET /static/") - before
    print(f"web3 join: {time.monotonic() - started:.0f} s, load {load.summary()}")
    assert load.report["failed"] == 0, load.failures_text()
    assert served > 0, f"web3 is behind the load balancer but served no {static}"


def test_new_servers_leave_service_under_load_and_are_destroyed(scale: ScaleOut) -> None:
    """Out of the LB and the upstreams, then out of their peers' settings: 0 failed; destroyed."""
    platform = scale.platform
    started = time.monotonic()
    with under_load(platform, clients=4, max_seconds=2400) as load:
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
