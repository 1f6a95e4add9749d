"""Secret rotation (issue 13, operation 5) on the HA lab, under load.

As an operator does it: new values in the vault (the platform's generated
vault, edited in place: the next modules converge with them), then
``playbooks/rotate-secrets.yml -e secret=db_app_password,secret_key,deploy_key``
while the load check counts failed requests (0 allowed):

- ``db_app_password``: MySQL accepts the new password beside the old one, each
  app server switches to it (graceful reload), then MySQL accepts it alone;
- ``secret_key``: an admin logged in before the rotation stays logged in (the
  replaced key in ``SECRET_KEY_FALLBACKS``); once the grace period is over,
  ``-e app_secret_key_fallbacks_drop=true`` (under load too) drops it, and
  the sessions it signed end;
- ``deploy_key``: the new key reads the repository on the forge, the old one
  is refused there from then on. The lab's forge takes its deploy keys from
  the lab's key files (GitHub's deploy-key list in production): the new pair
  replaces them, as the operator registers the new key on GitHub.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Platform, output, recap
from loadclient import Load, under_load

ENV_FILE = "/etc/ocpizza/app.env"
DEPLOY_KEY = "/etc/ocpizza/deploy_key"
ALLOWED = "db_app_password, secret_key, deploy_key"
EVERY_SECRET = "db_app_password,secret_key,deploy_key"


def rotate(
    platform: Platform, secret: str, log: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """rotate-secrets.yml for ``secret`` (comma-separated names), with the vault as it is."""
    return platform.playbook(
        "rotate-secrets.yml", "-e", f"secret={secret}", *extra, timeout=900, log=log
    )


def env_lines(platform: Platform, name: str) -> dict[str, str]:
    """{app server: the value of ``name`` in its environment file ('' when absent)}."""
    out = {}
    for app in platform.groups["appservers"]:
        res = platform.host(app).run(f"sed -n 's/^{name}=//p' {ENV_FILE}")
        out[app] = res.stdout.strip()
    return out


def random_value(length: int) -> str:
    """A random value of letters and digits (as the lab's generated vault has)."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


# --- Bad input ------------------------------------------------------------------


@pytest.mark.parametrize("extra", [("-e", "secret=api_token"), ()], ids=["unknown", "missing"])
def test_an_unknown_or_missing_secret_is_refused_before_any_change(
    platform: Platform, extra: tuple[str, ...]
) -> None:
    res = platform.playbook("rotate-secrets.yml", *extra, timeout=300)
    assert res.returncode != 0
    text = output(res)
    assert f"secret must be one of {ALLOWED}" in text, text[-2000:]
    assert set(recap(res.stdout)) == {"localhost"}, "a host was reached"


# --- Helpers ------------------------------------------------------------------


def db_accounts(platform: Platform, password: str) -> list[tuple[str, str, str]]:
    """(host, has a second authentication, is the password) of each app account."""
    db = platform.host(platform.groups["dbservers"][0])
    res = db.run(
        "mariadb -N -B -e \"SELECT Host, COALESCE(JSON_LENGTH(Priv, '$.auth_or'), 1) > 1,"
        f" JSON_VALUE(Priv, '$.authentication_string') = PASSWORD('{password}')"
        " FROM mysql.global_priv WHERE User = 'oc_pizza'\""
    )
    assert res.rc == 0, res.stderr
    return [tuple(line.split("\t")) for line in res.stdout.splitlines()]  # type: ignore[misc]


def admin_login(platform: Platform, jar: Path) -> None:
    """Log in to /admin/ through the load balancer with the generated admin password."""
    code, body = platform.curl("/admin/login/", "-c", str(jar), "-b", str(jar))
    assert code == "200", code
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    assert token, body[:500]
    code, _ = platform.curl(
        "/admin/login/",
        "-c",
        str(jar),
        "-b",
        str(jar),
        "-H",
        f"Referer: {platform.site}/admin/login/",
        "--data-urlencode",
        "username=admin",
        "--data-urlencode",
        f"password={platform.vault()['vault_django_admin_password']}",
        "--data-urlencode",
        f"csrfmiddlewaretoken={token.group(1)}",
        "--data-urlencode",
        "next=/admin/",
    )
    assert code == "302", f"the admin login answered {code}"


def admin_reached(platform: Platform, jar: Path) -> bool:
    """Does the session of ``jar`` reach /admin/ (200 with the index), not the login page?"""
    code, body = platform.curl("/admin/", "-c", str(jar), "-b", str(jar))
    return code == "200" and "Site administration" in body


def forge_reads(platform: Platform, key: Path) -> bool:
    """Can ``key`` list the app repository's branches on the forge (from the control node)?"""
    forge = platform.ip(platform.groups["forge"][0])
    ssh = (
        f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10"
        " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    )
    res = subprocess.run(
        ["git", "ls-remote", "--heads", f"git@{forge}:ocpizza.git", "production"],
        env={"GIT_SSH_COMMAND": ssh, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return res.returncode == 0 and "refs/heads/production" in res.stdout


def installed_public_keys(platform: Platform) -> set[str]:
    """The public halves of the deploy keys installed on the app servers."""
    keys = set()
    for app in platform.groups["appservers"]:
        out = platform.host(app).check_output(f"ssh-keygen -y -f {DEPLOY_KEY}")
        keys.add(" ".join(out.split()[:2]))
    return keys


# --- Every secret at once, under load -------------------------------------------


@dataclass
class Rotation:
    """The vault before and after, the rotation's run and its load, the admin's cookies."""

    old: dict[str, str]
    new: dict[str, str]
    jar: Path
    idle_jar: Path
    old_key: Path
    new_key: Path
    run: subprocess.CompletedProcess[str] | None = None
    load: Load | None = None
    checks: dict[str, str] = field(default_factory=dict)


def swap_deploy_key(platform: Platform, pair: Path) -> None:
    """Make ``pair`` (private key; ``.pub`` beside it) the lab's app deploy key."""
    target = platform.lab_dir / "deploy_app_ed25519"
    shutil.copyfile(pair, target)
    target.chmod(0o600)
    shutil.copyfile(f"{pair}.pub", f"{target}.pub")


@pytest.fixture(scope="module")
def rotation(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rotation]:
    """New values for the three secrets in the vault, then one rotation of all three under load."""
    tmp = tmp_path_factory.mktemp("rotation")
    old_key = tmp / "deploy_old"
    shutil.copyfile(platform.lab_dir / "deploy_app_ed25519", old_key)
    old_key.chmod(0o600)
    shutil.copyfile(platform.lab_dir / "deploy_app_ed25519.pub", f"{old_key}.pub")
    new_key = tmp / "deploy_new"
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "ocpizza-lab app deploy key",
            "-f",
            str(new_key),
        ],
        check=True,
    )
    old = platform.vault()
    state = Rotation(
        old=old,
        new={
            "vault_mysql_app_password": random_value(24),
            "vault_django_secret_key": random_value(50),
            "vault_app_deploy_key": new_key.read_text(),
        },
        jar=tmp / "cookies.txt",
        idle_jar=tmp / "idle-cookies.txt",
        old_key=old_key,
        new_key=new_key,
    )
    admin_login(platform, state.jar)
    admin_login(platform, state.idle_jar)
    state.checks["admin before"] = str(admin_reached(platform, state.jar))
    state.checks["old key before"] = str(forge_reads(platform, old_key))
    state.checks["new key before"] = str(forge_reads(platform, new_key))
    platform.edit_vault(state.new)
    swap_deploy_key(platform, new_key)
    with under_load(platform, max_seconds=900) as load:
        state.run = rotate(platform, EVERY_SECRET, "rotate-every-secret.log")
    state.load = load
    try:
        yield state
    finally:
        if state.run.returncode != 0:
            # Converge on the vault's values (the new ones) so the next modules find them.
            again = rotate(platform, EVERY_SECRET, "rotate-every-secret-again.log")
            assert again.returncode == 0, output(again)[-3000:]


def test_every_secret_rotates_at_once_with_no_failed_request(
    platform: Platform, rotation: Rotation
) -> None:
    assert rotation.run is not None and rotation.load is not None
    assert rotation.run.returncode == 0, output(rotation.run)[-5000:]
    print(f"rotate {EVERY_SECRET}: {rotation.load.summary()}")
    assert rotation.load.report.get("failed") == 0, rotation.load.failures_text()
    assert platform.curl("/healthz")[0] == "200"


def test_the_database_accepts_the_new_app_password_alone(
    platform: Platform, rotation: Rotation
) -> None:
    new, old = rotation.new["vault_mysql_app_password"], rotation.old["vault_mysql_app_password"]
    accounts = db_accounts(platform, new)
    # One authentication per account (the old one is gone), and it is the new password.
    assert accounts and all(a[1:] == ("0", "1") for a in accounts), accounts
    for app, url in env_lines(platform, "DATABASE_URL").items():
        assert new in url and old not in url, f"{app} does not use the new password"


def test_the_admin_stays_logged_in_with_the_old_key_as_a_fallback(
    platform: Platform, rotation: Rotation
) -> None:
    assert rotation.checks["admin before"] == "True"
    old, new = rotation.old["vault_django_secret_key"], rotation.new["vault_django_secret_key"]
    for app, key in env_lines(platform, "SECRET_KEY").items():
        assert key.strip("'") == new, f"{app} does not use the new SECRET_KEY"
    for app, fallbacks in env_lines(platform, "SECRET_KEY_FALLBACKS").items():
        assert fallbacks.strip("'") and old in json.loads(fallbacks.strip("'")), (
            f"{app}: the replaced key is not a fallback"
        )
    assert admin_reached(platform, rotation.jar), "the rotation logged the admin out"


def test_the_new_deploy_key_reads_and_the_old_one_is_refused(
    platform: Platform, rotation: Rotation
) -> None:
    assert rotation.checks["old key before"] == "True"
    assert rotation.checks["new key before"] == "False"
    new_public = " ".join(Path(f"{rotation.new_key}.pub").read_text().split()[:2])
    assert installed_public_keys(platform) == {new_public}
    assert forge_reads(platform, rotation.new_key), "the new deploy key cannot read the repository"
    assert not forge_reads(platform, rotation.old_key), "the forge still accepts the old deploy key"


# make test-full: one more rotation run under load (about 1 min), over make test's budget.
@pytest.mark.full
def test_the_end_of_the_grace_period_drops_the_old_key_under_load(
    platform: Platform, rotation: Rotation
) -> None:
    """``-e app_secret_key_fallbacks_drop=true``: no fallback left. A session used during
    the grace period was signed again with the new key (Django does it when a fallback
    verifies it) and stays; a session left idle since before the rotation ends."""
    with under_load(platform, max_seconds=600) as load:
        res = rotate(
            platform,
            "secret_key",
            "rotate-secret-key-drop.log",
            "-e",
            "app_secret_key_fallbacks_drop=true",
        )
    assert res.returncode == 0, output(res)[-5000:]
    print(f"rotate secret_key, fallback dropped: {load.summary()}")
    assert load.report.get("failed") == 0, load.failures_text()
    assert set(env_lines(platform, "SECRET_KEY_FALLBACKS").values()) == {""}
    assert admin_reached(platform, rotation.jar), "a session used during the grace period ended"
    assert not admin_reached(platform, rotation.idle_jar), (
        "a session of the dropped key still works"
    )
