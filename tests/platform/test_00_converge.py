"""The one converge of the platform run: idempotent, and a dry run that tells the truth."""

from __future__ import annotations

import re

from conftest import MAPPED_GROUPS, OVERLAY_KEYS, Platform, output, recap


def test_first_converge_changed_every_host(platform: Platform) -> None:
    # The session fixture ran site.yml once (log: .ansible/logs/platform-converge.log);
    # every host of the production shape and of the stand-ins took part.
    for group in ("loadbalancers", "webservers", "appservers", "dbservers", "forge"):
        assert platform.groups[group], f"the HA lab has no host in {group}"
    assert len(platform.groups["webservers"]) >= 2 and len(platform.groups["appservers"]) >= 2


def test_second_converge_changes_nothing(platform: Platform) -> None:
    res = platform.playbook("site.yml", log="platform-idempotence.log")
    assert res.returncode == 0, output(res)[-3000:]
    hosts = recap(res.stdout)
    assert set(hosts) >= {h for g in platform.groups.values() for h in g}
    changed = {h: r["changed"] for h, r in hosts.items() if r["changed"] or r["failed"]}
    assert not changed, f"not idempotent: {changed} (see .ansible/logs/platform-idempotence.log)"


def test_dry_run_completes_and_changes_nothing(platform: Platform) -> None:
    # What an operator's dry run on production touches: one host of each of
    # production's groups. The second web and app servers run the same tasks
    # with the same variables as the first, and the forge and the load
    # balancer are the lab's stand-ins (production has neither host): the
    # second converge above proved them all idempotent. Half the run's tasks.
    one_each = {platform.groups[g][0] for g in MAPPED_GROUPS}
    res = platform.playbook(
        "site.yml",
        "--check",
        "--diff",
        "--limit",
        ",".join(sorted(one_each)),
        log="platform-check.log",
    )
    assert res.returncode == 0, output(res)[-3000:]
    hosts = recap(res.stdout)
    assert set(hosts) == one_each, sorted(hosts)
    bad = {h: r for h, r in hosts.items() if r["changed"] or r["failed"] or r.get("unreachable")}
    assert not bad, (
        f"site.yml --check --diff on a converged lab: {bad} (see .ansible/logs/platform-check.log)"
    )


def changed_tasks(text: str) -> set[tuple[str, str]]:
    """(task name, host) of every 'changed:' line of an ansible-playbook run."""
    found: set[tuple[str, str]] = set()
    task = ""
    for line in text.splitlines():
        m = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\] \*+", line)
        if m:
            task = m.group(1)
        m = re.match(r"^changed: \[([^\]]+)\]", line)
        if m:
            found.add((task, m.group(1)))
    return found


def test_dry_run_of_one_changed_variable_names_exactly_what_would_change(
    platform: Platform,
) -> None:
    extra = ("--tags", "nginx", "-e", "nginx_client_max_body_size=11m")
    dry = platform.playbook(
        "site.yml", "--check", "--diff", *extra, log="platform-check-one-var.log"
    )
    assert dry.returncode == 0, output(dry)[-3000:]
    would = changed_tasks(dry.stdout)
    webs = set(platform.groups["webservers"])
    assert would, "the dry run reported no change for a changed variable"
    assert {h for _, h in would} == webs, would
    assert "client_max_body_size 11m" in dry.stdout  # the diff shows the new line
    try:
        real = platform.playbook("site.yml", *extra, log="platform-one-var.log")
        assert real.returncode == 0, output(real)[-3000:]
        assert changed_tasks(real.stdout) == would
    finally:
        back = platform.playbook("site.yml", "--tags", "nginx", log="platform-one-var-back.log")
        assert back.returncode == 0, output(back)[-3000:]
    assert platform.curl("/")[0] == "200"


def test_overlay_changes_only_what_cannot_exist_in_the_lab(platform: Platform) -> None:
    import yaml

    overlay = yaml.safe_load((platform.inventory / "group_vars/all/zz-lab-overlay.yml").read_text())
    assert set(overlay) <= OVERLAY_KEYS
