"""provision.yml and deprovision.yml, run for real, against the fake DigitalOcean API.

The sequence the issue asks for: provision, rerun (changed=0), a drifted load
balancer put back, deprovision, an interrupted provision, and the reruns that
finish it, with no duplicate droplet at any point. Along the way, the fact
cache: a droplet the run creates loses the cached facts of the host that bore
its name before, one it keeps does not. The counts it proves are printed at
the end (pytest -rP).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest
from fake_digitalocean import DEFAULT_TOKEN, FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import (
    REPO,
    VENV_BIN,
    ansible_env,
    playbook_command,
    recap,
    run,
    unwrap,
    write_extra_vars,
)

NAMES = [
    "ocpizza-staging-app1",
    "ocpizza-staging-db1",
    "ocpizza-staging-mon1",
    "ocpizza-staging-web1",
]
LB_NAME = "ocpizza-staging-lb"
# What a Debian 12 host left in the fact cache before its droplet was rebuilt.
STALE_FACTS = {"discovered_interpreter_python": "/usr/bin/python3.11", "ansible_hostname": "old"}


@pytest.fixture
def fake():
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.5)) as server:
        yield server


def fact_env(fake, cache):
    """The fake's environment, with a fact cache of the test's own (jsonfile)."""
    return {
        **ansible_env(fake),
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
    }


def provision(fake, extra, *args, env=None):
    command = playbook_command("provision.yml", "-e", f"@{extra}", *args)
    result = run(command, env or ansible_env(fake))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def cache_facts(fake, cache, tmp_path, hosts):
    """Leave facts in the fact cache, the way a run on these hosts would.

    ``hosts`` maps each host to the IPv4 addresses its facts record.
    """
    inventory = tmp_path / "cached-hosts.yml"
    inventory.write_text(
        json.dumps({"all": {"hosts": {h: {"addresses": a} for h, a in hosts.items()}}})
    )
    facts = " ".join(f"{k}={v}" for k, v in STALE_FACTS.items())
    arguments = f"{facts} ansible_all_ipv4_addresses={{{{ addresses }}}} cacheable=true"
    command = [str(VENV_BIN / "ansible"), "all", "-i", str(inventory)]
    command += ["-m", "ansible.builtin.set_fact", "-a", arguments]
    result = run(command, fact_env(fake, cache))
    assert result.returncode == 0, result.stdout + result.stderr


def active_droplet(fake, name):
    """The droplet, once the fake has made it active (reading it moves it on)."""
    request = urllib.request.Request(
        f"{fake.url}droplets?tag_name=env:staging",
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )
    for _ in range(50):
        with urllib.request.urlopen(request, timeout=5) as answer:
            droplets = json.load(answer)["droplets"]
        found = next(d for d in droplets if d["name"] == name)
        if found["status"] == "active":
            return found
        time.sleep(0.1)
    raise AssertionError(f"{name} never became active")


def cached_hosts(cache, *hosts):
    """Which of these hosts have facts in the cache (one file per host)."""
    files = [p.name for p in cache.iterdir()] if cache.exists() else []
    return sorted(h for h in hosts if any(name.endswith(h) for name in files))


def inventory(fake):
    result = run(
        [str(VENV_BIN / "ansible-inventory"), "-i", "inventories/staging", "--list"],
        ansible_env(fake),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return unwrap(json.loads(result.stdout))


def test_provision_rerun_interrupt_rerun_never_duplicates(fake, tmp_path):
    extra = write_extra_vars(tmp_path)
    cache = tmp_path / "facts"
    # Hosts of an earlier environment of the same names, and another host.
    old = ["192.0.2.10", "10.110.16.9"]  # the addresses of the earlier hosts
    cache_facts(fake, cache, tmp_path, {name: old for name in [*NAMES, "elsewhere1"]})
    assert cached_hosts(cache, *NAMES, "elsewhere1") == sorted([*NAMES, "elsewhere1"])

    # 1. Provision an empty account.
    first = provision(fake, extra, env=fact_env(fake, cache))
    assert recap(first.stdout)["localhost"]["changed"] == 1
    # The new droplets are new hosts: their names' cached facts are gone.
    assert cached_hosts(cache, *NAMES, "elsewhere1") == ["elsewhere1"]
    assert fake.droplet_names() == NAMES
    assert fake.droplets_created == 4
    assert fake.duplicate_names() == {}
    assert {d["status"] for d in fake.droplets.values()} == {"active"}
    sizes = {d["name"]: d["size_slug"] for d in fake.droplets.values()}
    assert sizes == {
        "ocpizza-staging-db1": "s-4vcpu-8gb",
        "ocpizza-staging-app1": "s-2vcpu-4gb",
        "ocpizza-staging-web1": "s-2vcpu-4gb",
        "ocpizza-staging-mon1": "s-1vcpu-2gb",
    }
    assert {d["region"]["slug"] for d in fake.droplets.values()} == {"fra1"}
    assert {d["image"]["slug"] for d in fake.droplets.values()} == {"ubuntu-24-04-x64"}
    assert [v["name"] for v in fake.vpcs.values()] == ["ocpizza-staging"]
    assert len({d["vpc_uuid"] for d in fake.droplets.values()}) == 1
    assert sorted(fw["name"] for fw in fake.firewalls.values()) == [
        "ocpizza-staging-appservers",
        "ocpizza-staging-dbservers",
        "ocpizza-staging-monitoring",
        "ocpizza-staging-webservers",
    ]
    assert "ocpizza-staging-db1: active, public 127." in first.stdout
    # The load balancer: in the VPC, in front of the web servers, PROXY protocol on.
    lb = fake.load_balancer_named(LB_NAME)
    assert lb is not None and lb["status"] == "active"
    assert lb["vpc_uuid"] == next(iter(fake.vpcs)) and lb["region"]["slug"] == "fra1"
    assert lb["tag"] == "ocpizza-staging-webservers" and lb["enable_proxy_protocol"] is True
    assert sorted((r["entry_port"], r["entry_protocol"]) for r in lb["forwarding_rules"]) == [
        (80, "tcp"),
        (443, "tcp"),
    ]
    assert lb["health_check"]["path"] == "/healthz"
    assert f"load balancer {LB_NAME}: active, ip {lb['ip']}" in " ".join(first.stdout.split())
    web = next(f for f in fake.firewalls.values() if f["name"] == "ocpizza-staging-webservers")
    web_sources = {r["ports"]: r["sources"] for r in web["inbound_rules"]}
    assert web_sources["443"] == web_sources["80"] == {"load_balancer_uids": [lb["id"]]}

    # The staging inventory now finds them, in their groups, with both addresses.
    listed = inventory(fake)
    assert listed["dbservers"]["hosts"] == ["ocpizza-staging-db1"]
    assert listed["appservers"]["hosts"] == ["ocpizza-staging-app1"]
    assert listed["webservers"]["hosts"] == ["ocpizza-staging-web1"]
    assert listed["monitoring"]["hosts"] == ["ocpizza-staging-mon1"]
    for droplet in fake.droplets.values():
        v4 = {n["type"]: n["ip_address"] for n in droplet["networks"]["v4"]}
        host = listed["_meta"]["hostvars"][droplet["name"]]
        assert host["ansible_host"] == v4["public"]
        assert host["ocpizza_private_ip"] == v4["private"]
        # Runs log in as the admin account (finding 16): a new droplet's first
        # converge falls back to root by itself (roles/common/tasks/login.yml).
        assert host["ansible_user"] == "deploy"

    # 2. Run again: nothing changes, and not one write reaches the API.
    mark = len(fake.requests)
    second = provision(fake, extra)
    rerun_changes = recap(second.stdout)["localhost"]["changed"]
    assert rerun_changes == 0
    assert fake.writes(since=mark) == []
    assert "nothing to change" in second.stdout

    # 2b. Someone changes the load balancer by hand: the next run puts it back.
    lb.update(enable_proxy_protocol=False, size_unit=3)
    lb["health_check"]["port"] = 443
    drift = provision(fake, extra)
    assert recap(drift.stdout)["localhost"]["changed"] == 1
    assert "update load_balancer ocpizza-staging-lb (health check, proxy protocol on, size 3" in (
        " ".join(drift.stdout.split())
    )
    lb = fake.load_balancer_named(LB_NAME)
    assert lb["enable_proxy_protocol"] is True and lb["size_unit"] == 1
    assert lb["health_check"]["port"] == 80
    assert fake.count("PUT", "^/v2/load_balancers/") == 1 and len(fake.load_balancers) == 1

    # 3. Deprovision: refused without the confirmation, done with it.
    refused = run(playbook_command("deprovision.yml"), ansible_env(fake))
    assert refused.returncode != 0
    assert "-e confirm_destroy=staging" in refused.stdout
    assert fake.droplet_names() == NAMES
    gone = run(
        playbook_command("deprovision.yml", "-e", "confirm_destroy=staging"), ansible_env(fake)
    )
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert fake.droplet_names() == [] and fake.vpcs == {} and fake.firewalls == {}
    assert fake.load_balancers == {}
    created_before = fake.droplets_created

    # 4. Provision again and interrupt it (SIGINT, like Ctrl-C) while the second
    #    droplet is being created. DigitalOcean creates it all the same: the
    #    answer is what gets lost.
    hold = fake.hold("POST", "^/v2/droplets$", nth=2)
    process = subprocess.Popen(
        playbook_command("provision.yml", "-e", f"@{extra}"),
        cwd=REPO,
        env=ansible_env(fake),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert hold.reached.wait(60), "the run never reached the second droplet"
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    finally:
        hold.release()
    assert hold.done.wait(10)
    assert process.returncode != 0
    assert fake.droplet_names() == ["ocpizza-staging-app1", "ocpizza-staging-db1"]

    # 5. Run again: it finishes the job, creating only the missing droplet.
    #    Facts cached before it: db1's are its own (its addresses), app1's and
    #    web1's an earlier host's. app1 was created by the interrupted run,
    #    which never reached its clearing play: its addresses give it away.
    db1 = active_droplet(fake, "ocpizza-staging-db1")
    own = [n["ip_address"] for n in db1["networks"]["v4"]]
    cache_facts(
        fake,
        cache,
        tmp_path,
        {"ocpizza-staging-db1": own, "ocpizza-staging-app1": old, "ocpizza-staging-web1": old},
    )
    third = provision(fake, extra, env=fact_env(fake, cache))
    assert cached_hosts(cache, *NAMES) == ["ocpizza-staging-db1"]
    assert recap(third.stdout)["localhost"]["changed"] == 1
    assert fake.droplet_names() == NAMES
    assert fake.duplicate_names() == {}
    assert fake.droplets_created - created_before == 4
    assert {d["status"] for d in fake.droplets.values()} == {"active"}

    # 6. And once more: nothing left to do.
    mark = len(fake.requests)
    fourth = provision(fake, extra)
    assert recap(fourth.stdout)["localhost"]["changed"] == 0
    assert fake.writes(since=mark) == []

    print(
        "DigitalOcean fake API: droplets created "
        f"{fake.droplets_created} (4 + 4 after deprovision, 2 of them by the interrupted run); "
        f"duplicates {sum(fake.duplicate_names().values())}; rerun changes "
        f"{rerun_changes + recap(fourth.stdout)['localhost']['changed']}"
    )
