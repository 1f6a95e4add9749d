"""Rollback (issue 13, operation 2) on the HA lab, under load.

The release deployed under load by test_50_rolling.py (or, when this module
runs alone, a new commit pushed to the forge and deployed) is rolled back:
``playbooks/rollback.yml`` takes every app server back to the release that
served before, one at a time, while the load check counts failed requests
(0 allowed). The release
rolled back from is marked bad: a deploy of its commit is refused, and so is
a rollback onto it unless ``-e allow_bad_release=true``; an unknown id is
refused before any change with the list of releases and their state; ``-e
release=<id>`` names one release on every app server. The module leaves the
forge's branch and every app server on the release rolled back to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from subprocess import CompletedProcess

import pytest
from conftest import Platform, output, recap
from loadclient import Load, under_load

# make test-full: over make test's budget (about 3 min on a quiet machine, with its
# deploy when test_50's drained deploy, also in make test-full, did not run first).
pytestmark = pytest.mark.full

APP_ROOT = "/srv/ocpizza"
BAD_DIR = f"{APP_ROOT}/shared/bad-releases"
REPO = "/srv/git/ocpizza.git"
GIT = "git -c user.name=t -c user.email=t@t"


@dataclass
class Release:
    """The release live on one app server: directory name and revision."""

    name: str
    revision: str

    @property
    def id(self) -> str:
        """Its platform-wide id, as the release list shows it (the commit's first 7 digits)."""
        return self.revision[:7]


@dataclass
class Case:
    """What the module's fixture did: the good releases, the deployed one, the rollback run."""

    good: dict[str, Release]
    new: dict[str, Release] = field(default_factory=dict)
    run: CompletedProcess[str] | None = None
    load: Load | None = None


def live(platform: Platform) -> dict[str, Release]:
    """{app server: its live release}."""
    out = {}
    for app in platform.groups["appservers"]:
        host = platform.host(app)
        name = host.check_output(f"basename $(readlink {APP_ROOT}/current)")
        revision = host.check_output(f"cat {APP_ROOT}/current/REVISION")
        out[app] = Release(name, revision)
    return out


def served(platform: Platform, app: str) -> str:
    """The release gunicorn on one app server reports on its health path."""
    body = platform.host(app).check_output(
        f"curl -sS --max-time 10 http://{platform.ip(app)}:8000/healthz"
    )
    return json.loads(body)["release"]


def forge_git(platform: Platform, command: str) -> str:
    """A shell command on the forge, as root, in repositories the git user owns."""
    forge = platform.host(platform.groups["forge"][0])
    forge.check_output(
        "git config --global --get-all safe.directory | grep -qx '[*]'"
        " || git config --global --add safe.directory '*'"
    )
    return forge.check_output(command)


def rollback(platform: Platform, *extra: str, log: str | None = None) -> CompletedProcess[str]:
    """Run playbooks/rollback.yml with extra arguments."""
    return platform.playbook("rollback.yml", *extra, log=log, timeout=900)


def previous(platform: Platform) -> dict[str, Release]:
    """{app server: the release before its live one} (empty when one has none)."""
    out = {}
    for app in platform.groups["appservers"]:
        host = platform.host(app)
        if not host.file(f"{APP_ROOT}/previous").is_symlink:
            return {}
        name = host.check_output(f"basename $(readlink {APP_ROOT}/previous)")
        revision = host.check_output(f"cat {APP_ROOT}/previous/REVISION")
        out[app] = Release(name, revision)
    return out


@pytest.fixture(scope="module")
def case(platform: Platform) -> Iterator[Case]:
    """A release newer than the one before it on every app server, rolled back under load;
    afterwards, the forge's branch and every app server on the release rolled back to.

    The release deployed under load by test_50_rolling.py (the head of ``production``)
    is the one rolled back from when it is live everywhere; otherwise (this module
    alone) a new commit is pushed and deployed first.
    """
    now, before = live(platform), previous(platform)
    head = forge_git(platform, f"git -C {REPO} rev-parse production")
    reuse = bool(before) and all(
        now[app].revision == head and before[app].revision != head for app in now
    )
    result = Case(good=before if reuse else now)
    good_head = next(iter(result.good.values())).revision
    try:
        if reuse:
            result.new = now
        else:
            forge_git(
                platform,
                f"set -e; rm -rf /tmp/rb && {GIT} clone -q -b production {REPO} /tmp/rb"
                f" && cd /tmp/rb && echo 'rollback-test-{int(time.time())}' > ROLLBACK_MARKER"
                f" && {GIT} add ROLLBACK_MARKER && {GIT} commit -qm 'rollback test commit'"
                f" && {GIT} push -q origin production && chown -R git:git {REPO}",
            )
            res = platform.playbook("deploy.yml", log="platform-rollback-deploy.log", timeout=1200)
            assert res.returncode == 0, output(res)[-3000:]
            result.new = live(platform)
        with under_load(platform, max_seconds=900) as load:
            result.run = rollback(platform, log="platform-rollback.log")
        result.load = load
        yield result
    finally:
        # The forge's branch on the release rolled back to (a later deploy or a new
        # server builds a good commit); every app server on it.
        forge_git(
            platform,
            f"git -C {REPO} update-ref refs/heads/production {good_head} && chown -R git:git {REPO}",
        )
        now = live(platform)
        if any(now[app].revision != result.good[app].revision for app in result.good):
            first = next(iter(result.good.values()))
            res = rollback(platform, "-e", f"release={first.id}", "-e", "allow_bad_release=true")
            assert res.returncode == 0, output(res)[-3000:]


def test_rollback_under_load_serves_the_previous_release_everywhere(
    platform: Platform, case: Case
) -> None:
    assert case.run is not None and case.load is not None
    assert case.run.returncode == 0, output(case.run)[-3000:]
    print(f"rollback: {case.load.summary()}")
    assert case.load.report["failed"] == 0, case.load.failures_text()
    for app, before in case.good.items():
        assert case.new[app].revision != before.revision, app  # the deploy made a new release
        assert live(platform)[app] == before, app
        assert served(platform, app) == before.name, app
        host = platform.host(app)
        # The release rolled back from is marked bad, on each app server.
        assert host.file(f"{BAD_DIR}/{case.new[app].revision}").exists, app
    text = output(case.run)
    # The virtualenv was reused: nothing installed, no release built.
    assert "pipenv" not in text
    assert "Create the release directory" not in text


def test_check_mode_says_what_would_switch_and_changes_nothing(
    platform: Platform, case: Case
) -> None:
    new_id = next(iter(case.new.values())).id
    res = rollback(platform, "--check", "-e", f"release={new_id}", "-e", "allow_bad_release=true")
    assert res.returncode == 0, output(res)[-3000:]
    text = output(res)
    for app, before in case.good.items():
        assert f"switch from {before.name} to {new_id} ({case.new[app].name})" in text, app
        assert "would switch current to" in text
    assert live(platform) == case.good


def test_a_deploy_of_the_bad_commit_is_refused(platform: Platform, case: Case) -> None:
    res = platform.playbook("deploy.yml", log="platform-rollback-deploy-bad.log", timeout=1200)
    text = output(res)
    assert res.returncode != 0
    revision = next(iter(case.new.values())).revision
    assert f"revision {revision} was marked bad" in text, text[-3000:]
    assert "-e app_allow_bad_release=true" in text
    assert live(platform) == case.good


def test_an_unknown_release_is_refused_before_any_change_with_the_list(
    platform: Platform, case: Case
) -> None:
    res = rollback(platform, "-e", "release=0000000")
    text = output(res)
    assert res.returncode != 0
    assert "no release 0000000 on" in text, text[-3000:]
    for app, before in case.good.items():
        assert f"{before.id} {before.name} current" in text, app
        assert f"{case.new[app].id} {case.new[app].name} bad" in text, app
    # Refused in the first play, before any app server was switched or marked.
    assert all(counts["changed"] == 0 for counts in recap(res.stdout).values())
    assert "Switch back and mark" not in text
    assert live(platform) == case.good


def test_a_named_release_and_a_bad_one_only_when_asked(platform: Platform, case: Case) -> None:
    new_id = next(iter(case.new.values())).id
    good_id = next(iter(case.good.values())).id
    res = rollback(platform, "-e", f"release={new_id}")
    assert res.returncode != 0
    assert f"release {new_id} " in output(res) and "was marked bad" in output(res)
    assert "-e allow_bad_release=true" in output(res)
    assert live(platform) == case.good

    with under_load(platform, max_seconds=900) as load:
        res = rollback(platform, "-e", f"release={new_id}", "-e", "allow_bad_release=true")
    assert res.returncode == 0, output(res)[-3000:]
    print(f"rollback onto a bad release, asked: {load.summary()}")
    assert load.report["failed"] == 0, load.failures_text()
    assert live(platform) == case.new

    with under_load(platform, max_seconds=900) as load:
        res = rollback(platform, "-e", f"release={good_id}", log="platform-rollback-named.log")
    assert res.returncode == 0, output(res)[-3000:]
    print(f"rollback to a named release: {load.summary()}")
    assert load.report["failed"] == 0, load.failures_text()
    assert live(platform) == case.good
    for app, before in case.good.items():
        assert served(platform, app) == before.name, app
