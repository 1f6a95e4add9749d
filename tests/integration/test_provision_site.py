"""provision.yml goes on with site.yml only when asked (-e run_site=true)."""

from __future__ import annotations

import socket

import pytest
from fake_digitalocean import FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import ansible_env, playbook_command, recap, run, write_extra_vars

DROPLETS = (
    "ocpizza-staging-db1",
    "ocpizza-staging-app1",
    "ocpizza-staging-web1",
    "ocpizza-staging-mon1",
)


@pytest.fixture
def fake():
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.2)) as server:
        yield server


def closed_port():
    """A loopback port nothing listens on, so that SSH attempts fail at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_site_runs_on_the_new_droplets_only_when_asked(fake, tmp_path):
    # The fake droplets' addresses are loopback ones, and this port is closed:
    # site.yml's connections are refused at once and go nowhere else.
    extra = write_extra_vars(tmp_path, ansible_port=closed_port())
    env = ansible_env(fake)

    without = run(playbook_command("provision.yml", "-e", f"@{extra}"), env)
    assert without.returncode == 0, without.stdout + without.stderr
    hosts = recap(without.stdout)
    assert all(hosts[name]["unreachable"] == 0 for name in DROPLETS)

    with_site = run(
        playbook_command("provision.yml", "-e", f"@{extra}", "-e", "run_site=true"), env
    )
    hosts = recap(with_site.stdout)
    assert hosts["localhost"]["changed"] == 0  # the droplets were already there
    # site.yml ran on the new droplets: its first play, the inventory check,
    # stops it there, before any connection, because this staging inventory
    # has none of its secrets (CI passes them in the environment).
    text = " ".join((with_site.stdout + with_site.stderr).split())
    assert with_site.returncode != 0
    assert "The inventory is not ready to deploy (staging)" in text, text[-3000:]
    assert all(name in text for name in DROPLETS)
    assert "not ready to deploy" not in without.stdout + without.stderr
    assert fake.droplets_created == 4
