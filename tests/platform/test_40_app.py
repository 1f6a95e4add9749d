"""The app tier of the converged HA lab (roles app, gunicorn, forge, static_publish).

What an operator relies on after ``site.yml``, on every app server: the app
user, the configuration directory of §4.1.4, the environment file, the
release layout, gunicorn under supervisor (its settings, ten kills, log
rotation), the forge's deploy-key limits, the database schemas, the static
files on every web server; then the role entry points runbook playbooks call
(gunicorn check.yml and control.yml), in one run of files/app/entry_points.yml
(app's rollback.yml runs in test_41_app_deploys.py, after a deploy).

The helpers here (playbook runs of files/app/, the app servers' state) also
serve test_41_app_deploys.py. Playbook logs: .ansible/logs[/<prefix>]/app-*.log,
their wall times in app-timings.txt beside them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import testinfra
import yaml
from conftest import LOGS, ROOT, Platform, output

FILES = Path(__file__).resolve().parent / "files" / "app"
CONTRACT = yaml.safe_load((ROOT / "group_vars" / "all" / "platform_contract.yml").read_text())
APP_ROOT: str = CONTRACT["ocpizza_app_root"]
CONF_HOME: str = CONTRACT["ocpizza_conf_dir"]
ENV_FILE = f"{CONF_HOME}/app.env"
PORT: int = CONTRACT["ocpizza_gunicorn_port"]
HEALTH: str = CONTRACT["ocpizza_health_path"]
GUNICORN_LOG = f"{CONTRACT['ocpizza_log_dir']}/gunicorn.log"
EXAMPLE = ROOT / "examples" / "ocpizza"
FORGE_HOME = "/srv/git"

# Other settings than production's, for the supervision tests: a change of
# gunicorn.conf.py and of supervisor's program (log size, startsecs). Put
# back at the end of the module.
SMALL_GUNICORN = {
    "gunicorn_max_requests": 999,
    "gunicorn_log_max_bytes": "64KB",
    "gunicorn_log_backups": 3,
    "gunicorn_startsecs": 1,
}


# --- helpers (test_41_app_deploys.py uses them too) ---------------------------


def sh(host: testinfra.host.Host, command: str) -> str:
    """Run a shell command on a testinfra host; fail with its output if it fails."""
    result = host.run(command)
    assert result.rc == 0, f"{command}: rc={result.rc}\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()


def record_timing(name: str, seconds: float, rc: int) -> None:
    """Append a playbook's wall time to app-timings.txt (and print it)."""
    line = f"{time.strftime('%H:%M:%S')} {name}: {seconds:.1f} s (rc={rc})"
    print(line)
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / "app-timings.txt").open("a") as handle:
        handle.write(line + "\n")


def run_playbook(
    platform: Platform, name: str, log: str, extra: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run files/app/<name>, or playbooks/<name>, with JSON extra variables."""
    path = FILES / name if (FILES / name).exists() else ROOT / "playbooks" / name
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra or {}, handle)
    try:
        start = time.monotonic()
        res = platform.playbook(str(path), "-e", f"@{handle.name}", log=f"app-{log}.log")
        record_timing(log, time.monotonic() - start, res.returncode)
    finally:
        Path(handle.name).unlink()
    return res


def apps(platform: Platform) -> list[str]:
    return platform.groups["appservers"]


def forge_host(platform: Platform) -> testinfra.host.Host:
    return platform.host(platform.groups["forge"][0])


def forge_git(platform: Platform, repo: str, *args: str) -> str:
    """git in one of the forge's bare repositories, as the forge's git user."""
    quoted = " ".join(shlex.quote(a) for a in args)
    return sh(forge_host(platform), f"runuser -u git -- git -C {FORGE_HOME}/{repo}.git {quoted}")


def live_release(host: testinfra.host.Host) -> str:
    return Path(sh(host, f"readlink {APP_ROOT}/current")).name


def gunicorn_pid(host: testinfra.host.Host) -> int:
    return int(sh(host, "supervisorctl pid gunicorn"))


def healthz(platform: Platform, app: str, timeout: int = 5) -> tuple[int, dict[str, Any]]:
    """/healthz of one app server, asked on that server (as role app's checks do)."""
    res = platform.host(app).run(
        f"curl -s --max-time {timeout} -w '\\n%{{http_code}}' http://{platform.ip(app)}:{PORT}{HEALTH}"
    )
    body, _, code = res.stdout.rpartition("\n")
    try:
        return int(code or 0), json.loads(body or "{}")
    except json.JSONDecodeError:
        return int(code or 0), {"body": body}


def page(platform: Platform, app: str, path: str = "/") -> str:
    """A page from one app server, with the site's name and HTTPS as nginx forwards them."""
    return sh(
        platform.host(app),
        f"curl -s --max-time 10 -H 'Host: www.ocpizza.com' -H 'X-Forwarded-Proto: https'"
        f" http://{platform.ip(app)}:{PORT}{path}",
    )


def wait_serving(platform: Platform, app: str, deadline: float = 60) -> int:
    """Wait until gunicorn serves on ``app``: RUNNING under supervisor and /healthz
    with the live release. Bounded; returns the master's pid."""
    host = platform.host(app)
    end = time.monotonic() + deadline
    last: object = None
    while time.monotonic() < end:
        status = host.run("supervisorctl status gunicorn").stdout
        if "RUNNING" in status:
            last = healthz(platform, app, timeout=3)
            if last[0] == 200 and last[1].get("release") == live_release(host):
                return gunicorn_pid(host)
        else:
            last = status
        time.sleep(0.3)
    raise AssertionError(
        f"{app}: gunicorn not serving its live release within {deadline} s: {last}"
    )


def django_eval(host: testinfra.host.Host, code: str) -> str:
    """Run Python in the live release's Django shell (ocpizza-manage, as the app user)."""
    return sh(host, f"ocpizza-manage shell --no-imports -c {shlex.quote(code)}")


def read_env(host: testinfra.host.Host) -> dict[str, str]:
    env = {}
    for line in sh(host, f"cat {ENV_FILE}").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = (shlex.split(value) or [""])[0]
    return env


# --- the converged state --------------------------------------------------------


def test_app_user_is_a_system_user_without_login(platform: Platform) -> None:
    for app in apps(platform):
        user = platform.host(app).user("ocpizza")
        assert user.exists, app
        assert user.uid < 1000, app
        assert user.shell == "/usr/sbin/nologin", app
        assert user.home == "/var/lib/ocpizza", app


def test_configuration_directory_of_the_operations_document(platform: Platform) -> None:
    """§4.1.4/§4.1.5: <conf>/OC_PIZZA/settings/production.py and resources/*.xlsx."""
    conf = f"{CONF_HOME}/OC_PIZZA"
    sample = EXAMPLE / "resources" / "ocpizza-resources.xlsx"  # the overlay's app_resources_src
    for app in apps(platform):
        host = platform.host(app)
        for path in (conf, f"{conf}/settings", f"{conf}/resources"):
            d = host.file(path)
            assert d.is_directory and (d.user, d.group, d.mode) == ("root", "ocpizza", 0o750), (
                app,
                path,
            )
        settings = host.file(f"{conf}/settings/production.py")
        assert (settings.user, settings.group, settings.mode) == ("root", "ocpizza", 0o640), app
        assert "from ocpizza.settings.production import *" in settings.content_string, app
        assert host.file(f"{conf}/settings/__init__.py").exists, app
        copied = host.file(f"{conf}/resources/{sample.name}")
        assert copied.sha256sum == hashlib.sha256(sample.read_bytes()).hexdigest(), app
        # The app user may read its configuration but not change it.
        assert host.run(f"runuser -u ocpizza -- touch {conf}/settings/x.py").rc != 0, app
    # The running application uses that settings module.
    module = django_eval(
        platform.host(apps(platform)[0]),
        "from django.conf import settings; print(settings.SETTINGS_MODULE)",
    )
    assert module == "settings.production"


def test_environment_file_permissions(platform: Platform) -> None:
    for app in apps(platform):
        host = platform.host(app)
        env_file = host.file(ENV_FILE)
        assert (env_file.user, env_file.group, env_file.mode) == ("root", "ocpizza", 0o640), app
        assert host.run(f"runuser -u ocpizza -- cat {ENV_FILE}").rc == 0, app
        assert host.run(f"runuser -u nobody -- cat {ENV_FILE}").rc != 0, app


def test_environment_file_content(platform: Platform) -> None:
    vault = yaml.safe_load((platform.lab_dir / "secrets" / "platform-vault.yml").read_text())
    site = yaml.safe_load(
        (ROOT / "inventories" / "production" / "group_vars" / "all" / "site.yml").read_text()
    )
    names = site["nginx_server_names"]
    db = platform.ip(platform.groups["dbservers"][0])
    for app in apps(platform):
        host = platform.host(app)
        env = read_env(host)
        assert env["DJANGO_SETTINGS_MODULE"] == "settings.production", app
        assert env["PYTHONPATH"] == f"{CONF_HOME}/OC_PIZZA", app
        assert len(env["SECRET_KEY"]) >= 50, app
        url = urlsplit(env["DATABASE_URL"])
        assert (url.scheme, url.hostname, url.port, url.path) == ("mysql", db, 3306, "/oc_pizza")
        assert unquote(url.username or "") == "oc_pizza", app
        assert unquote(url.password or "") == vault["vault_mysql_app_password"], app
        assert env["ALLOWED_HOSTS"].split(",") == names, app
        assert env["CSRF_TRUSTED_ORIGINS"].split(",") == [
            f"https://{name}:{platform.https_port}" for name in names
        ], app
        assert env["STATIC_ROOT"] == f"{APP_ROOT}/current/staticfiles", app
        assert env["OCPIZZA_RELEASE"] == live_release(host), app
        assert env["OCPIZZA_RESOURCES_DIR"] == f"{CONF_HOME}/OC_PIZZA/resources", app
        # Optional services: present with the vault's value when it has one, absent (not empty) if not.
        for key, secret in (
            ("GOOGLE_MAPS_API_KEY", "vault_google_maps_api_key"),
            ("SENTRY_DSN", "vault_sentry_dsn"),
            ("PAYPAL_CLIENT_ID", "vault_paypal_client_id"),
            ("PAYPAL_CLIENT_SECRET", "vault_paypal_client_secret"),
        ):
            if vault.get(secret):
                assert env[key] == vault[secret], (app, key)
            else:
                assert key not in env, (app, key)


def test_deploy_key_is_private_and_forge_key_is_pinned(platform: Platform) -> None:
    forge_key = forge_host(platform).file("/etc/ssh/ssh_host_ed25519_key.pub").content_string
    for app in apps(platform):
        host = platform.host(app)
        key = host.file(f"{CONF_HOME}/deploy_key")
        assert (key.user, key.mode) == ("root", 0o600), app
        assert forge_key.split()[1] in host.file(f"{CONF_HOME}/known_hosts").content_string, app


def test_release_layout(platform: Platform) -> None:
    production = forge_git(platform, "ocpizza", "rev-parse", "production")
    for app in apps(platform):
        host = platform.host(app)
        assert host.file(f"{APP_ROOT}/current").is_symlink, app
        release = live_release(host)
        assert host.file(f"{APP_ROOT}/releases/{release}/REVISION").content_string.strip() == (
            production
        ), app
        venv = host.file(f"{APP_ROOT}/releases/{release}/.venv")
        assert venv.is_symlink and venv.linked_to.startswith(f"{APP_ROOT}/shared/venvs/"), app
        assert host.file(f"{venv.linked_to}/.ocpizza-complete").exists, app
        assert not host.file(f"{APP_ROOT}/releases/{release}/.git").exists, app
        # Code belongs to root: the running application cannot change it.
        assert host.file(f"{APP_ROOT}/releases/{release}/manage.py").user == "root", app
        assert host.run(f"runuser -u ocpizza -- touch {APP_ROOT}/releases/{release}/x").rc != 0


def test_management_commands_run_as_the_app_user(platform: Platform) -> None:
    host = platform.host(apps(platform)[0])
    assert django_eval(host, "import os; print(os.getuid())") == str(host.user("ocpizza").uid)


def test_migrations_applied_and_superuser_created(platform: Platform) -> None:
    host = platform.host(apps(platform)[0])  # one database for every app server
    plan = sh(host, "ocpizza-manage showmigrations --plan")
    assert "[X]  shop.0001_initial" in plan
    assert "[ ]" not in plan
    code = (
        "from django.contrib.auth import get_user_model; "
        "print(get_user_model().objects.filter(username='admin', is_superuser=True).exists())"
    )
    assert django_eval(host, code) == "True"


def test_gunicorn_runs_under_supervisor_bound_to_the_private_address(platform: Platform) -> None:
    for app in apps(platform):
        host = platform.host(app)
        pid = wait_serving(platform, app)
        assert "RUNNING" in sh(host, "supervisorctl status gunicorn"), app
        assert sh(host, f"ps -o user= -p {pid}") == "ocpizza", app
        listening = sh(host, f"ss -Hltn 'sport = :{PORT}'").split("\n")
        assert [line.split()[3] for line in listening] == [f"{platform.ip(app)}:{PORT}"], app
        # Workers: 2 x vCPUs + 1, bounded 2..12 (filter ocpizza_gunicorn_workers).
        vcpus = int(sh(host, "nproc"))
        assert len(sh(host, f"pgrep -P {pid}").split()) == max(2, min(12, 2 * vcpus + 1)), app


def test_healthz_ok_with_the_database_reachable(platform: Platform) -> None:
    for app in apps(platform):
        wait_serving(platform, app)
        live = live_release(platform.host(app))
        assert healthz(platform, app) == (200, {"status": "ok", "database": True, "release": live})


def test_the_apps_database_connection_is_tls_verified(platform: Platform) -> None:
    # Finding 8: the app's own Django connection is encrypted, with the server's
    # certificate checked against the CA (the platform overlay names the lab CA).
    code = (
        "from django.db import connection; c = connection.cursor(); "
        "c.execute(\"SHOW SESSION STATUS LIKE 'Ssl_version'\"); print(c.fetchone()[1]); "
        "print(sorted(connection.settings_dict['OPTIONS'].get('ssl', {}).items()))"
    )
    for app in apps(platform):
        version, ssl = django_eval(platform.host(app), code).splitlines()[-2:]
        assert version in ("TLSv1.2", "TLSv1.3"), (app, version)
        assert "('check_hostname', True)" in ssl, (app, ssl)


def test_site_pages_with_imported_data_and_hashed_static_files(platform: Platform) -> None:
    code, home = platform.curl("/")
    assert code == "200"
    assert "OC Pizza Bastille" in home  # from the Excel file (import_resources)
    code, login = platform.curl("/admin/login/")
    assert code == "200"
    css = re.search(r'href="/static/(admin/css/base\.[0-9a-f]{12}\.css)"', login)
    assert css, "the admin links hashed static file names (ManifestStaticFilesStorage)"
    assert platform.curl(f"/static/{css.group(1)}")[0] == "200"
    for app in apps(platform):
        assert "OC Pizza Bastille" in page(platform, app), app
        assert platform.host(app).file(f"{APP_ROOT}/current/staticfiles/{css.group(1)}").is_file


def test_forge_gives_the_deploy_key_read_access_to_its_repository_only(platform: Platform) -> None:
    forge = platform.groups["forge"][0]
    ssh = (
        f"ssh -i {CONF_HOME}/deploy_key -o IdentitiesOnly=yes -o BatchMode=yes"
        f" -o UserKnownHostsFile={CONF_HOME}/known_hosts -o StrictHostKeyChecking=yes"
    )
    git = f"GIT_SSH_COMMAND='{ssh}' git"
    for app in apps(platform):
        host = platform.host(app)
        refs = sh(host, f"{git} ls-remote git@{forge}:ocpizza.git")
        assert "refs/heads/production" in refs and "refs/heads/main" in refs, app
        sh(host, f"rm -rf /tmp/push-test && {git} clone -q git@{forge}:ocpizza.git /tmp/push-test")
        push = host.run(
            "cd /tmp/push-test && git -c user.name=t -c user.email=t@t commit -q --allow-empty"
            f" -m x && {git} push origin HEAD:production; rc=$?; rm -rf /tmp/push-test; exit $rc"
        )
        assert push.rc != 0, app
        assert "write access to ocpizza.git is not granted" in push.stderr, app
        # database.git has its own deploy key (the database server's).
        other = host.run(f"{git} ls-remote git@{forge}:database.git")
        assert other.rc != 0 and "read access to database.git is not granted" in other.stderr
        shell = host.run(f"{ssh} git@{forge} id")
        assert shell.rc != 0 and "may only run git" in shell.stderr, app


def test_database_schemas_from_the_forge_are_applied(platform: Platform) -> None:
    """§3.2: role mysql applied database.git (examples/database) from the forge; again is harmless."""
    db = platform.host(platform.groups["dbservers"][0])
    files = sorted(p.name for p in (ROOT / "examples" / "database").glob("*.sql"))
    served = forge_git(platform, "database", "ls-tree", "--name-only", "main").split()
    assert set(files) <= set(served)
    indexes = db.check_output("mysql -N oc_pizza -e 'SHOW INDEX FROM ocpizza_audit_log'")
    assert "ocpizza_audit_log_object_idx" in indexes
    for name in files:  # each file is idempotent
        sql = forge_git(platform, "database", "show", f"main:{name}")
        result = db.run(f"mysql oc_pizza <<'SQL'\n{sql}\nSQL")
        assert result.rc == 0, (name, result.stderr)


def static_root() -> str:
    return CONTRACT["ocpizza_static_root"]


def test_static_files_published_to_every_web_server(platform: Platform) -> None:
    app = platform.host(apps(platform)[0])
    manifest = app.file(f"{APP_ROOT}/current/staticfiles/staticfiles.json").content_string
    hashed = re.search(r'"admin/css/base\.css": "([^"]+)"', manifest)
    assert hashed, manifest[:300]
    for web in platform.groups["webservers"]:
        published = platform.host(web).file(f"{static_root()}/{hashed.group(1)}")
        assert published.is_file and published.mode == 0o644, web


def test_no_leftovers(platform: Platform) -> None:
    for app in apps(platform):
        host = platform.host(app)
        assert not host.file(f"{APP_ROOT}/current.tmp").exists, app
        # The static files' private temporary directories (ansible.builtin.tempfile) are gone.
        assert host.run("ls -d /tmp/ansible.*.static /var/tmp/ocpizza-static-*").rc != 0, app
        found = sh(host, f"find {APP_ROOT}/releases -mindepth 1 -maxdepth 1 -name '*.unpack'")
        assert found == "", app


def test_the_example_is_what_the_forge_serves(platform: Platform) -> None:
    """The forge's tree is examples/ocpizza (seeded from the control node)."""
    listed = set(forge_git(platform, "ocpizza", "ls-tree", "-r", "--name-only", "main").split())
    assert {"manage.py", "Pipfile", "Pipfile.lock", "shop/models.py"} <= listed
    assert not any(p.startswith(".venv/") or "__pycache__" in p for p in listed)


# --- gunicorn under supervisor, with small settings ---------------------------

STATE: dict[str, Any] = {"gunicorn_small": False}


def put_gunicorn_back(platform: Platform) -> None:
    """Role gunicorn with the inventory's settings again (if a test left them small)."""
    if STATE["gunicorn_small"]:
        res = run_playbook(platform, "gunicorn.yml", "gunicorn-back")
        assert res.returncode == 0, output(res)[-3000:]
        STATE["gunicorn_small"] = False


@pytest.fixture(scope="module")
def small_gunicorn(platform: Platform) -> Iterator[dict[str, Any]]:
    """gunicorn with SMALL_GUNICORN on every app server: the masters before, and the run."""
    before = {app: wait_serving(platform, app) for app in apps(platform)}
    STATE["gunicorn_small"] = True
    try:
        res = run_playbook(platform, "gunicorn.yml", "gunicorn-change", SMALL_GUNICORN)
        yield {"before": before, "run": res}
    finally:
        put_gunicorn_back(platform)
        for app in apps(platform):
            wait_serving(platform, app)


def test_a_change_of_gunicorn_settings_restarts_it(
    platform: Platform, small_gunicorn: dict[str, Any]
) -> None:
    res = small_gunicorn["run"]
    assert res.returncode == 0, output(res)[-3000:]
    # The program's definition changed too (log size, startsecs): `supervisorctl
    # update` restarts it, and the handler "Reload gunicorn" then has nothing to do.
    restarted = set()
    for section in res.stdout.split("RUNNING HANDLER [gunicorn : ")[1:]:
        if section.startswith("Apply the supervisor program]"):
            body = section.split("TASK [", 1)[0].split("PLAY RECAP", 1)[0]
            restarted |= set(re.findall(r"^changed: \[([^\]]+)\]", body, re.M))
    for app in apps(platform):
        host = platform.host(app)
        assert app in restarted, f"{app}: no restart of gunicorn after a change of its program"
        assert "max_requests = 999" in sh(host, f"cat {CONF_HOME}/gunicorn.conf.py"), app
        assert wait_serving(platform, app) != small_gunicorn["before"][app], app


def test_a_change_of_gunicorn_conf_alone_reloads_it_gracefully(
    platform: Platform, small_gunicorn: dict[str, Any]
) -> None:
    """Only gunicorn.conf.py changes (the program does not): a HUP, the same master,
    new workers with the new settings; no restart (it would refuse connections)."""
    masters = {app: wait_serving(platform, app) for app in apps(platform)}
    workers = {
        app: set(sh(platform.host(app), f"pgrep -P {masters[app]}").split()) for app in masters
    }
    res = run_playbook(
        platform,
        "gunicorn.yml",
        "gunicorn-conf-only",
        {**SMALL_GUNICORN, "gunicorn_max_requests": 998},
    )
    assert res.returncode == 0, output(res)[-3000:]
    text = output(res)
    assert "Reload gunicorn gracefully for its new settings" in text, text[-3000:]
    for app in apps(platform):
        host = platform.host(app)
        assert "max_requests = 998" in sh(host, f"cat {CONF_HOME}/gunicorn.conf.py"), app
        assert wait_serving(platform, app) == masters[app], f"{app}: gunicorn was restarted"
        now = set(sh(host, f"pgrep -P {masters[app]}").split())
        assert now and not now & workers[app], f"{app}: the old workers still run"


def test_supervisorctl_stop_and_start_gunicorn(
    platform: Platform, small_gunicorn: dict[str, Any]
) -> None:
    """§5.2: `supervisorctl stop gunicorn` then `supervisorctl start gunicorn`, on one app
    server: the site answers from the other meanwhile."""
    app = apps(platform)[0]
    host = platform.host(app)
    wait_serving(platform, app)
    sh(host, "supervisorctl stop gunicorn")
    try:
        assert "STOPPED" in host.run("supervisorctl status gunicorn").stdout
        assert healthz(platform, app, timeout=3)[0] == 0  # refused
        assert platform.curl("/healthz")[0] == "200"
    finally:
        sh(host, "supervisorctl start gunicorn")
    assert "RUNNING" in sh(host, "supervisorctl status gunicorn")
    wait_serving(platform, app, deadline=30)
