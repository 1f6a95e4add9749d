"""deploy.yml records each deploy with Sentry's web API when the vault sets a token.

playbooks/tasks/sentry_deploy.yml (deploy.yml's last play) runs on app servers
that are the control node itself (connection local), each with a release
directory named as role app names them, against the Sentry-protocol stand-in
of the platform run (tests/platform/sentry_stub.py): its releases and deploys
endpoints check the bearer token and the organisation as Sentry does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "platform"))
from sentry_stub import SentryStub  # noqa: E402  (the platform run's stand-in)

PLAY = ROOT / "tests" / "integration" / "files" / "sentry_deploy.yml"
COMMIT = "d652015"


@pytest.fixture
def stub() -> Iterator[SentryStub]:
    with SentryStub(organization="ocpizza", lifetime=120) as server:
        yield server


def record(tmp_path: Path, stub: SentryStub, token: str, commits: tuple[str, ...] = (COMMIT,)):
    """Run the play on one app server per commit; each serves a release of that commit."""
    hosts = {}
    for i, commit in enumerate(commits):
        root = tmp_path / f"app{i}"
        release = root / "releases" / f"2026113012000{i}-{commit}"
        release.mkdir(parents=True, exist_ok=True)
        if not (root / "current").exists():
            (root / "current").symlink_to(release)
        hosts[f"app{i}"] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ocpizza_app_root": str(root),
        }
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"appservers": {"hosts": hosts}}))
    extra = {
        "vault_sentry_auth_token": token,
        "ocpizza_sentry_url": stub.url,
        "ocpizza_sentry_organization": "ocpizza",
        "ocpizza_sentry_project": "ocpizza",
        "ocpizza_environment": "staging",
    }
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(PLAY)]
    return subprocess.run(
        [*argv, "-e", json.dumps(extra)],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_deploy_is_recorded_as_the_commit_and_the_environment(tmp_path: Path, stub: SentryStub):
    run = record(tmp_path, stub, stub.auth_token, (COMMIT, COMMIT))
    assert run.returncode == 0, run.stdout + run.stderr
    assert stub.releases[COMMIT]["projects"] == ["ocpizza"]
    assert stub.deploys == [{"environment": "staging", "version": COMMIT}]
    assert stub.auth_token not in run.stdout + run.stderr
    # Again: the release exists (208), a second deploy of it is recorded.
    again = record(tmp_path, stub, stub.auth_token, (COMMIT, COMMIT))
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(stub.deploys) == 2


def test_a_refused_token_fails_after_the_deploy_and_stays_hidden(tmp_path: Path, stub: SentryStub):
    wrong = "0" * 64
    run = record(tmp_path, stub, wrong)
    text = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0
    assert "The new release is live, but Sentry did not record the deploy: HTTP 401" in text
    assert wrong not in text and stub.auth_token not in text
    assert stub.releases == {} and stub.deploys == []


def test_app_servers_on_different_commits_are_named_not_recorded(tmp_path: Path, stub: SentryStub):
    run = record(tmp_path, stub, stub.auth_token, (COMMIT, "abcdef1"))
    text = " ".join(run.stdout.split())
    assert run.returncode != 0
    assert f"the app servers serve {COMMIT}, abcdef1" in text, text[-1500:]
    assert stub.releases == {}


def test_without_a_token_nothing_is_sent(tmp_path: Path, stub: SentryStub):
    run = record(tmp_path, stub, "")
    assert run.returncode == 0, run.stdout + run.stderr
    assert stub.requests == []
