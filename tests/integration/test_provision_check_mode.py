"""Check mode of provision.yml and deprovision.yml: the plan and its cost, nothing changed."""

from __future__ import annotations

import pytest
from fake_digitalocean import FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import ansible_env, playbook_command, run, write_extra_vars


@pytest.fixture
def fake():
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.3)) as server:
        yield server


def test_check_mode_prints_the_plan_and_the_monthly_cost(fake, tmp_path):
    extra = write_extra_vars(tmp_path)
    env = ansible_env(fake)

    empty = run(playbook_command("provision.yml", "--check", "-e", f"@{extra}"), env)
    assert empty.returncode == 0, empty.stdout + empty.stderr
    out = " ".join(empty.stdout.split())  # the YAML callback folds long lines
    for line in (
        "create vpc ocpizza-staging (fra1, 10.110.16.0/20)",
        "create ssh_key ocpizza-tests",
        # SSH and MySQL from the app servers, the node and MySQL exporters from monitoring;
        # out: DNS (UDP, TCP), NTP, 80 and 443 (apt; 443 also the backups), git over SSH, ICMP.
        "create firewall ocpizza-staging-dbservers (4 inbound rules, 7 outbound rules)",
        # SSH, gunicorn from the web servers and (its metrics) from monitoring, the node exporter.
        # Out: the common five, MySQL on the database servers, git over SSH, ICMP.
        "create firewall ocpizza-staging-appservers (4 inbound rules, 8 outbound rules)",
        # SSH, HTTP and HTTPS, the node and nginx exporters from monitoring.
        # Out: the common five, gunicorn on the app servers, ICMP.
        "create firewall ocpizza-staging-webservers (5 inbound rules, 7 outbound rules)",
        # The monitoring host: SSH only (Prometheus and Alertmanager through a tunnel).
        # Out: the common five, the four scrapes, the e-mail smarthost, ICMP.
        "create firewall ocpizza-staging-monitoring (1 inbound rules, 11 outbound rules)",
        "create droplet ocpizza-staging-db1 (dbservers, s-4vcpu-8gb, ubuntu-24-04-x64, fra1):"
        " $48.00/month",
        "create droplet ocpizza-staging-app1 (appservers, s-2vcpu-4gb, ubuntu-24-04-x64,"
        " fra1): $24.00/month",
        "create droplet ocpizza-staging-mon1 (monitoring, s-1vcpu-2gb, ubuntu-24-04-x64,"
        " fra1): $12.00/month",
        "create load_balancer ocpizza-staging-lb (fra1, 1 unit, 443/tcp→443/tcp, 80/tcp→80/tcp,"
        " check http:80/healthz, proxy protocol on, droplets of webservers): $12.00/month",
        "monthly cost: $120.00 (+$120.00/month from this run)",
    ):
        assert line in out, line
    assert fake.writes() == []

    # Provision, lose the web server, and ask again: only it is planned.
    real = run(playbook_command("provision.yml", "-e", f"@{extra}"), env)
    assert real.returncode == 0, real.stdout + real.stderr
    web = next(i for i, d in fake.droplets.items() if d["name"] == "ocpizza-staging-web1")
    del fake.droplets[web]
    mark = len(fake.requests)
    partial = run(playbook_command("provision.yml", "--check", "-e", f"@{extra}"), env)
    assert partial.returncode == 0, partial.stdout + partial.stderr
    out = " ".join(partial.stdout.split())
    assert "create droplet ocpizza-staging-web1" in out
    assert "create droplet ocpizza-staging-db1" not in out
    assert "monthly cost: $120.00 (+$24.00/month from this run)" in out
    assert "load_balancer" not in out.split("unchanged:")[0]  # kept, not re-created
    assert fake.writes(since=mark) == []

    # Deprovision in check mode needs no confirmation and destroys nothing.
    preview = run(playbook_command("deprovision.yml", "--check"), env)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    out = " ".join(preview.stdout.split())
    assert "delete droplet ocpizza-staging-db1" in out
    assert "delete vpc ocpizza-staging" in out
    assert "delete load_balancer ocpizza-staging-lb" in out
    assert "delete droplet ocpizza-staging-mon1" in out
    # db $48 + app $24 + monitoring $12 + load balancer $12 (web1 was lost above).
    assert "monthly cost: $0.00 (-$96.00/month from this run)" in out
    assert fake.writes(since=mark) == []
    assert len(fake.droplets) == 3 and len(fake.load_balancers) == 1
