"""The converged app server: what an operator relies on after a first deploy."""

from __future__ import annotations

import hashlib
import re
import shlex
import time
from urllib.parse import unquote, urlsplit

import pytest
from appscenario import (
    APP,
    APP_ROOT,
    CONF_HOME,
    DB,
    DB_PASSWORD,
    ENV_FILE,
    EXAMPLE_DIR,
    FORGE,
    PROJECT_DIR,
    django_eval,
    forge_git,
    gunicorn_pid,
    healthz,
    http_get,
    live_release,
    manage,
    record_timing,
    sh,
    wait_healthz,
    wait_serving,
)
from conftest import container_ip

pytest_plugins = ("appscenario",)  # fixtures app and serving


def read_env(app) -> dict[str, str]:
    env = {}
    for line in sh(app, f"cat {ENV_FILE}").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = (shlex.split(value) or [""])[0]
    return env


def test_app_user_is_a_system_user_without_login(app):
    user = app.user("ocpizza")
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == "/var/lib/ocpizza"


def test_configuration_directory_of_the_operations_document(app):
    """§4.1.4/§4.1.5: <conf>/OC_PIZZA/settings/production.py and resources/*.xlsx."""
    conf = f"{CONF_HOME}/OC_PIZZA"
    for path in (conf, f"{conf}/settings", f"{conf}/resources"):
        d = app.file(path)
        assert d.is_directory and (d.user, d.group, d.mode) == ("root", "ocpizza", 0o750), path
    settings = app.file(f"{conf}/settings/production.py")
    assert (settings.user, settings.group, settings.mode) == ("root", "ocpizza", 0o640)
    assert "from ocpizza.settings.production import *" in settings.content_string
    assert app.file(f"{conf}/settings/__init__.py").exists
    sample = EXAMPLE_DIR / "resources" / "ocpizza-resources.xlsx"
    copied = app.file(f"{conf}/resources/{sample.name}")
    assert copied.sha256sum == hashlib.sha256(sample.read_bytes()).hexdigest()
    # The running application uses that settings module.
    module = django_eval(app, "from django.conf import settings; print(settings.SETTINGS_MODULE)")
    assert module == "settings.production"
    # The app user may read its configuration but not change it.
    assert app.run(f"runuser -u ocpizza -- touch {conf}/settings/x.py").rc != 0


def test_environment_file_permissions(app):
    env_file = app.file(ENV_FILE)
    assert (env_file.user, env_file.group, env_file.mode) == ("root", "ocpizza", 0o640)
    assert app.run(f"runuser -u ocpizza -- cat {ENV_FILE}").rc == 0
    assert app.run(f"runuser -u nobody -- cat {ENV_FILE}").rc != 0


def test_environment_file_content(app):
    env = read_env(app)
    assert env["DJANGO_SETTINGS_MODULE"] == "settings.production"
    assert env["PYTHONPATH"] == f"{CONF_HOME}/OC_PIZZA"
    assert len(env["SECRET_KEY"]) >= 50
    url = urlsplit(env["DATABASE_URL"])
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "mysql", container_ip(DB), 3306, "/oc_pizza",
    )  # fmt: skip
    assert unquote(url.username) == "oc_pizza"
    assert unquote(url.password) == DB_PASSWORD
    assert env["ALLOWED_HOSTS"] == "www.ocpizza.com"
    assert env["CSRF_TRUSTED_ORIGINS"] == "https://www.ocpizza.com,https://www.ocpizza.com:8443"
    assert env["STATIC_ROOT"] == f"{APP_ROOT}/current/staticfiles"
    assert env["OCPIZZA_RELEASE"] == live_release(app)
    assert env["OCPIZZA_RESOURCES_DIR"] == f"{CONF_HOME}/OC_PIZZA/resources"
    assert env["GOOGLE_MAPS_API_KEY"] == "molecule-maps-key"
    # Optional services not configured are absent, not empty.
    assert not {"SENTRY_DSN", "PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET"} & env.keys()


def test_deploy_key_is_private_and_forge_key_is_pinned(app, get_host):
    key = app.file(f"{CONF_HOME}/deploy_key")
    assert (key.user, key.mode) == ("root", 0o600)
    forge_key = get_host(FORGE).file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
    assert forge_key in app.file(f"{CONF_HOME}/known_hosts").content_string


def test_release_layout(app, get_host):
    current = app.file(f"{APP_ROOT}/current")
    assert current.is_symlink
    release = live_release(app)
    assert re.fullmatch(r"\d{14}-[0-9a-f]{7}", release), release
    production = forge_git(get_host(FORGE), "ocpizza", "rev-parse", "production")
    assert app.file(f"{APP_ROOT}/releases/{release}/REVISION").content_string.strip() == production
    assert release.endswith(production[:7])
    venv = app.file(f"{APP_ROOT}/releases/{release}/.venv")
    assert venv.is_symlink and venv.linked_to.startswith(f"{APP_ROOT}/shared/venvs/")
    assert app.file(f"{venv.linked_to}/.ocpizza-complete").exists
    assert not app.file(f"{APP_ROOT}/releases/{release}/.git").exists
    # Code belongs to root: the running application cannot change it.
    assert app.file(f"{APP_ROOT}/releases/{release}/manage.py").user == "root"
    assert app.run(f"runuser -u ocpizza -- touch {APP_ROOT}/releases/{release}/x").rc != 0


def test_management_commands_run_as_the_app_user(app):
    uid = app.user("ocpizza").uid
    assert django_eval(app, "import os; print(os.getuid())") == str(uid)


def test_migrations_applied_and_superuser_created(app):
    plan = manage(app, "showmigrations", "--plan")
    assert "[X]  shop.0001_initial" in plan
    assert "[ ]" not in plan
    code = (
        "from django.contrib.auth import get_user_model; "
        "print(get_user_model().objects.filter(username='admin', is_superuser=True).exists())"
    )
    assert django_eval(app, code) == "True"


def test_gunicorn_runs_under_supervisor_bound_to_the_private_address(app, serving):
    status = sh(app, "supervisorctl status gunicorn")
    assert "RUNNING" in status
    pid = serving
    assert sh(app, f"ps -o user= -p {pid}") == "ocpizza"
    listening = sh(app, "ss -Hltn 'sport = :8000'").split("\n")
    assert [line.split()[3] for line in listening] == [f"{container_ip(APP)}:8000"]
    # Workers: 2 x vCPUs + 1, bounded 2..12 (filter ocpizza_gunicorn_workers).
    vcpus = int(sh(app, "nproc"))
    workers = len(sh(app, f"pgrep -P {pid}").split())
    assert workers == max(2, min(12, 2 * vcpus + 1))


def test_healthz_ok_with_the_database_reachable(app, serving):
    assert healthz() == {"status": "ok", "database": True, "release": live_release(app)}


def test_site_pages_with_imported_data_and_hashed_static_files(app, serving):
    home = http_get("/", proxied=True)
    assert home.status == 200
    assert "OC Pizza Bastille" in home.body  # from the Excel file (import_resources)
    login = http_get("/admin/login/", proxied=True)
    assert login.status == 200
    css = re.search(r'href="/static/(admin/css/base\.[0-9a-f]{12}\.css)"', login.body)
    assert css, "the admin links hashed static file names (ManifestStaticFilesStorage)"
    assert app.file(f"{APP_ROOT}/current/staticfiles/{css.group(1)}").is_file


def test_supervisorctl_stop_and_start_gunicorn(app, serving):
    """§5.2: `supervisorctl stop gunicorn` then `supervisorctl start gunicorn`."""
    sh(app, "supervisorctl stop gunicorn")
    assert "STOPPED" in app.run("supervisorctl status gunicorn").stdout
    with pytest.raises(OSError):
        http_get("/healthz", timeout=3)
    sh(app, "supervisorctl start gunicorn")
    assert "RUNNING" in sh(app, "supervisorctl status gunicorn")
    wait_healthz(live_release(app), deadline=30)


def test_supervisor_restarts_gunicorn_when_it_dies(app, serving):
    before = serving
    sh(app, f"kill -9 {before}")
    end = time.monotonic() + 30
    while time.monotonic() < end:
        status = app.run("supervisorctl status gunicorn").stdout
        if "RUNNING" in status and gunicorn_pid(app) != before:
            break
        time.sleep(0.2)
    assert gunicorn_pid(app) != before
    wait_healthz(live_release(app), deadline=30)


def test_gunicorn_answers_again_within_5_s_after_each_of_ten_kills(app, serving):
    """An out-of-memory kill of the master, ten times in a row: its workers die
    with it (they would keep the port), and each time the new master answers
    /healthz within 5 s of the kill."""
    release = live_release(app)
    pid = serving
    seconds = []
    for attempt in range(1, 11):
        workers = sh(app, f"pgrep -P {pid}").split()
        assert workers, "the master has workers"
        sh(app, f"kill -9 {pid}")
        killed = time.monotonic()
        # The old workers must be gone (an orphan would answer for the dead master).
        while app.run(f"ps -o pid= -p {','.join(workers)}").rc == 0:
            assert time.monotonic() - killed < 5, (
                f"kill {attempt}: workers {workers} outlive their master"
            )
            time.sleep(0.05)
        answer: object = None
        while time.monotonic() - killed < 5:
            try:
                answer = http_get("/healthz", timeout=1)
            except OSError as error:
                answer = error
            if getattr(answer, "status", None) == 200:
                break
            time.sleep(0.1)
        took = time.monotonic() - killed
        record_timing(f"gunicorn-kill-{attempt}", took, 0)
        seconds.append(round(took, 2))
        assert getattr(answer, "status", None) == 200, (
            f"kill {attempt}: no /healthz 200 within 5 s ({answer}); so far {seconds}"
        )
        assert answer.json()["release"] == release
        # Supervisor counts a death within startsecs as a failed start: kill
        # the next master once it is RUNNING, as an out-of-memory kill would.
        new = wait_serving(app, deadline=30)
        assert new != pid
        pid = new
    print(f"recovery after each of ten kill -9: {seconds} s")


def test_gunicorn_log_is_rotated_by_supervisor(app, serving):
    """The scenario sets gunicorn_log_max_bytes to 64KB; ~2 KB access-log lines fill it fast."""
    log = "/var/log/ocpizza/gunicorn.log"
    padding = "x" * 2000
    end = time.monotonic() + 60
    while not app.file(f"{log}.1").exists and time.monotonic() < end:
        for _ in range(10):
            http_get(f"/healthz?{padding}")
    assert app.file(f"{log}.1").exists
    assert app.file(log).size < 64 * 1024 + 4096


def test_forge_gives_the_deploy_key_read_access_to_its_repository_only(app):
    git = (
        f"GIT_SSH_COMMAND='ssh -i {CONF_HOME}/deploy_key -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o UserKnownHostsFile={CONF_HOME}/known_hosts -o StrictHostKeyChecking=yes' git"
    )
    refs = sh(app, f"{git} ls-remote git@{FORGE}:ocpizza.git")
    assert "refs/heads/production" in refs and "refs/heads/main" in refs
    sh(app, f"rm -rf /tmp/push-test && {git} clone -q git@{FORGE}:ocpizza.git /tmp/push-test")
    push = app.run(
        "cd /tmp/push-test && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m x "
        f"&& {git} push origin HEAD:production"
    )
    assert push.rc != 0
    assert "write access to ocpizza.git is not granted" in push.stderr
    # database.git has its own deploy key (the database server's).
    other = app.run(f"{git} ls-remote git@{FORGE}:database.git")
    assert other.rc != 0 and "read access to database.git is not granted" in other.stderr
    shell = app.run(
        f"ssh -i {CONF_HOME}/deploy_key -o BatchMode=yes -o UserKnownHostsFile={CONF_HOME}/known_hosts "
        f"git@{FORGE} id"
    )
    assert shell.rc != 0 and "may only run git" in shell.stderr


def test_database_schemas_from_the_forge_are_applied(get_host):
    """§3.2: role mysql applied database.git (examples/database) from the forge; again is harmless."""
    forge, db = get_host(FORGE), get_host(DB)
    files = sorted(p.name for p in (PROJECT_DIR / "examples" / "database").glob("*.sql"))
    served = forge_git(forge, "database", "ls-tree", "--name-only", "main").split()
    assert set(files) <= set(served)
    indexes = db.check_output("mysql -N oc_pizza -e 'SHOW INDEX FROM ocpizza_audit_log'")
    assert "ocpizza_audit_log_object_idx" in indexes
    for name in files:  # each file is idempotent
        sql = forge_git(forge, "database", "show", f"main:{name}")
        result = db.run(f"mysql oc_pizza <<'SQL'\n{sql}\nSQL")
        assert result.rc == 0, result.stderr


def test_static_files_published_to_a_web_server(app, get_host):
    """Role static_publish, with the forge standing in for a web server."""
    web = get_host(FORGE)
    manifest = app.file(f"{APP_ROOT}/current/staticfiles/staticfiles.json").content_string
    hashed = re.search(r'"admin/css/base\.css": "([^"]+)"', manifest).group(1)
    published = web.file(f"/srv/www-test/static/{hashed}")
    assert published.is_file and published.mode == 0o644
    assert web.file("/srv/www-test/static/staticfiles.json").content_string == manifest


def test_no_leftovers(app):
    assert not app.file(f"{APP_ROOT}/current.tmp").exists
    # The static files' private temporary directories (ansible.builtin.tempfile) are gone.
    assert app.run("ls -d /tmp/ansible.*.static /var/tmp/ocpizza-static-*").rc != 0
    assert sh(app, f"find {APP_ROOT}/releases -mindepth 1 -maxdepth 1 -name '*.unpack'") == ""


def test_the_example_is_what_the_forge_serves(get_host):
    """The forge's production tree is examples/ocpizza (seeded from the control node)."""
    forge = get_host(FORGE)
    listed = set(forge_git(forge, "ocpizza", "ls-tree", "-r", "--name-only", "main").split())
    assert {"manage.py", "Pipfile", "Pipfile.lock", "shop/models.py"} <= listed
    assert not any(p.startswith(".venv/") or "__pycache__" in p for p in listed)
