"""provision.yml and deprovision.yml, run for real, against the fake DigitalOcean API.

The sequence the issue asks for: provision, rerun (changed=0), deprovision,
an interrupted provision, and the reruns that finish it, with no duplicate
droplet at any point. The counts it proves are printed at the end (pytest -rP).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from fake_digitalocean import FakeConfig, FakeDigitalOcean
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

NAMES = ["ocpizza-staging-app1", "ocpizza-staging-db1", "ocpizza-staging-web1"]


@pytest.fixture
def fake():
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.5)) as server:
        yield server


def provision(fake, extra, *args):
    result = run(playbook_command("provision.yml", "-e", f"@{extra}", *args), ansible_env(fake))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def inventory(fake):
    result = run(
        [str(VENV_BIN / "ansible-inventory"), "-i", "inventories/staging", "--list"],
        ansible_env(fake),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return unwrap(json.loads(result.stdout))


def test_provision_rerun_interrupt_rerun_never_duplicates(fake, tmp_path):
    extra = write_extra_vars(tmp_path)

    # 1. Provision an empty account.
    first = provision(fake, extra)
    assert recap(first.stdout)["localhost"]["changed"] == 1
    assert fake.droplet_names() == NAMES
    assert fake.droplets_created == 3
    assert fake.duplicate_names() == {}
    assert {d["status"] for d in fake.droplets.values()} == {"active"}
    sizes = {d["name"]: d["size_slug"] for d in fake.droplets.values()}
    assert sizes == {
        "ocpizza-staging-db1": "s-4vcpu-8gb",
        "ocpizza-staging-app1": "s-2vcpu-4gb",
        "ocpizza-staging-web1": "s-2vcpu-4gb",
    }
    assert {d["region"]["slug"] for d in fake.droplets.values()} == {"fra1"}
    assert {d["image"]["slug"] for d in fake.droplets.values()} == {"ubuntu-24-04-x64"}
    assert [v["name"] for v in fake.vpcs.values()] == ["ocpizza-staging"]
    assert len({d["vpc_uuid"] for d in fake.droplets.values()}) == 1
    assert sorted(fw["name"] for fw in fake.firewalls.values()) == [
        "ocpizza-staging-appservers",
        "ocpizza-staging-dbservers",
        "ocpizza-staging-webservers",
    ]
    assert "ocpizza-staging-db1: active, public 127." in first.stdout

    # The staging inventory now finds them, in their groups, with both addresses.
    listed = inventory(fake)
    assert listed["dbservers"]["hosts"] == ["ocpizza-staging-db1"]
    assert listed["appservers"]["hosts"] == ["ocpizza-staging-app1"]
    assert listed["webservers"]["hosts"] == ["ocpizza-staging-web1"]
    for droplet in fake.droplets.values():
        v4 = {n["type"]: n["ip_address"] for n in droplet["networks"]["v4"]}
        host = listed["_meta"]["hostvars"][droplet["name"]]
        assert host["ansible_host"] == v4["public"]
        assert host["ocpizza_private_ip"] == v4["private"]
        assert host["ansible_user"] == "root"

    # 2. Run again: nothing changes, and not one write reaches the API.
    mark = len(fake.requests)
    second = provision(fake, extra)
    rerun_changes = recap(second.stdout)["localhost"]["changed"]
    assert rerun_changes == 0
    assert fake.writes(since=mark) == []
    assert "nothing to change" in second.stdout

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
    third = provision(fake, extra)
    assert recap(third.stdout)["localhost"]["changed"] == 1
    assert fake.droplet_names() == NAMES
    assert fake.duplicate_names() == {}
    assert fake.droplets_created - created_before == 3
    assert {d["status"] for d in fake.droplets.values()} == {"active"}

    # 6. And once more: nothing left to do.
    mark = len(fake.requests)
    fourth = provision(fake, extra)
    assert recap(fourth.stdout)["localhost"]["changed"] == 0
    assert fake.writes(since=mark) == []

    print(
        "DigitalOcean fake API: droplets created "
        f"{fake.droplets_created} (3 + 3 after deprovision, 2 of them by the interrupted run); "
        f"duplicates {sum(fake.duplicate_names().values())}; rerun changes "
        f"{rerun_changes + recap(fourth.stdout)['localhost']['changed']}"
    )
