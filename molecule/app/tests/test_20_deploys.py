"""Deploys after the first one, in order: each test pushes a commit to the
forge's production branch (or changes the source) and runs molecule/app/deploy.yml.

Wall times go to timings.txt in molecule's scratch directory and to the output.
"""

from __future__ import annotations

import re
import shlex
import stat
import subprocess
import zipfile
from pathlib import Path

from appscenario import (
    APP_ROOT,
    CONF_HOME,
    EXAMPLE_DIR,
    FORGE,
    PROJECT_DIR,
    SCENARIO_DIR,
    Poller,
    ansible_playbook,
    deploy,
    django_eval,
    gunicorn_pid,
    healthz,
    http_get,
    live_release,
    push,
    releases,
    sh,
    task_was_skipped,
)
from conftest import ephemeral_dir

pytest_plugins = ("appscenario",)  # fixtures app and serving

PIPENV_TASK = "app : Run pipenv install --deploy as ocpizza-build"
BUILD_USER = "ocpizza-build"
BUILD_HOME = "/var/lib/ocpizza-build"
STATE: dict[str, object] = {}


def venv_of(app, release: str) -> str:
    return sh(app, f"readlink {APP_ROOT}/releases/{release}/.venv")


def example(path: str) -> str:
    return (EXAMPLE_DIR / path).read_text()


def test_code_only_deploy_reuses_the_virtualenv_and_reloads_gracefully(app, serving):
    before = live_release(app)
    venv = venv_of(app, before)
    # The first release's virtualenv (the ZIP deploy reuses it): known before
    # this deploy, so that test does not depend on this one passing.
    STATE.update(venv_a=venv)
    marker = sh(app, f"stat -c '%i %Y' {venv}/.ocpizza-complete")
    pid = serving
    # New code (a template) and a new static file that the page links.
    home = example("shop/templates/shop/home.html").replace(
        "<h1>OC Pizza</h1>",
        '{% load static %}<link rel="stylesheet" href="{% static \'shop/build.css\' %}">\n'
        '  <h1>OC Pizza</h1>\n  <p id="build">Build B</p>',
    )
    sha = push(
        [
            {"path": "shop/templates/shop/home.html", "content": home},
            {"path": "shop/static/shop/build.css", "content": "#build { color: #b22222; }\n"},
        ],
        "Code-only change",
    )

    with Poller() as poller:
        run = deploy("deploy-code-only")
    assert run.rc == 0, run.output[-4000:]

    after = live_release(app)
    assert after != before and after.endswith(sha[:7])
    assert sh(app, f"cat {APP_ROOT}/releases/{after}/REVISION") == sha
    # Same virtualenv, untouched: pipenv did not run.
    assert venv_of(app, after) == venv
    assert sh(app, f"stat -c '%i %Y' {venv}/.ocpizza-complete") == marker
    assert task_was_skipped(run.output, PIPENV_TASK)
    # Graceful reload: same master, new workers on the new code.
    assert gunicorn_pid(app) == pid
    assert healthz()["release"] == after
    page = http_get("/", proxied=True).body
    assert 'id="build">Build B' in page
    assert re.search(r"/static/shop/build\.[0-9a-f]{12}\.css", page)
    assert sh(app, f"readlink {APP_ROOT}/previous") == f"{APP_ROOT}/releases/{before}"
    # No probe failed while the release changed under it.
    assert poller.failures == [], poller.failures[:5]
    assert poller.releases[-1] == after and poller.ok > 10


def test_static_files_of_the_old_release_stay_published(get_host):
    """Publishing the new release's files adds them beside the old ones."""
    web = get_host(FORGE)
    old = set(web.check_output("cat /var/lib/ocpizza-static/sets/*").split())
    run = ansible_playbook("publish_static.yml", {}, log_name="publish-static")
    assert run.rc == 0, run.output[-3000:]
    present = set(web.check_output("cd /srv/www-test/static && find . -type f").split())
    assert old <= present, sorted(old - present)[:5]
    assert any(re.fullmatch(r"\./shop/build\.[0-9a-f]{12}\.css", p) for p in present)
    assert len(web.check_output("ls /var/lib/ocpizza-static/sets").split()) == 2


def test_changed_lock_deploy_builds_a_new_virtualenv(app, serving):
    before = live_release(app)
    pid = serving
    files = SCENARIO_DIR / "files" / "changed-lock"
    sha = push(
        [
            {"path": "Pipfile", "src": str(files / "Pipfile")},
            {"path": "Pipfile.lock", "src": str(files / "Pipfile.lock")},
        ],
        "Lock change (add six)",
    )
    run = deploy("deploy-changed-lock")
    assert run.rc == 0, run.output[-4000:]
    after = live_release(app)
    assert after != before and after.endswith(sha[:7])
    venv = venv_of(app, after)
    assert venv != venv_of(app, before)
    assert not task_was_skipped(run.output, PIPENV_TASK)
    assert sh(app, f"{venv}/bin/python -c 'import six; print(six.__version__)'").startswith("1.")
    # Another interpreter: gunicorn was restarted, not HUP'ed.
    assert gunicorn_pid(app) != pid
    assert healthz()["release"] == after
    STATE.update(venv_c=venv, release_c=after)
    assert_built_unprivileged(app, after, venv)


def assert_built_unprivileged(app, release: str, venv: str) -> None:
    """Finding 3: pipenv ran as the build user, not root: what the build writes
    outside the virtualenv (virtualenv's seed cache, which the old build left
    in /root) is the build user's, in its home; the release and its
    virtualenv end root's and read-only to the app user."""
    seeds = f"{BUILD_HOME}/.local/share/virtualenv"
    assert app.file(seeds).is_directory and app.file(seeds).user == BUILD_USER
    assert not app.file("/root/.local/share/virtualenv").exists, "the build ran as root"
    # The build user: no login shell, no password, no group but its own, no sudo.
    entry = app.user(BUILD_USER)
    assert (entry.shell, entry.groups, entry.password) == ("/usr/sbin/nologin", [BUILD_USER], "!")
    assert app.run(f"sudo -n -l -U {BUILD_USER}").stdout.count("may run") == 0
    # Root's from top to bottom; nothing the app user may change.
    tree = f"{APP_ROOT}/releases/{release} {venv}"
    assert sh(app, f"find {tree} ! -user root -print -quit") == ""
    assert sh(app, f"find {tree} ! -group root -print -quit") == ""
    as_app = "setpriv --reuid=ocpizza --regid=ocpizza --init-groups"
    assert sh(app, f"{as_app} find {tree} -writable -print -quit") == ""
    assert app.file(f"{APP_ROOT}/releases/{release}/staticfiles/staticfiles.json").user == "root"


def test_failed_migration_leaves_the_previous_release_serving(app, serving):
    before = live_release(app)
    known = releases(app)
    pid = serving
    broken = (
        "from django.db import migrations\n\n\n"
        "def fail(apps, schema_editor):\n"
        '    raise RuntimeError("migration broken on purpose")\n\n\n'
        "class Migration(migrations.Migration):\n"
        '    dependencies = [("shop", "0002_resourceimport")]\n'
        "    operations = [migrations.RunPython(fail)]\n"
    )
    push([{"path": "shop/migrations/0099_broken.py", "content": broken}], "Broken migration")
    run = deploy("deploy-broken-migration")
    assert run.rc != 0
    assert "migration broken on purpose" in run.output
    assert f"Release {before} is still live" in run.output
    assert live_release(app) == before
    assert releases(app) == known, "the broken release is removed"
    assert gunicorn_pid(app) == pid
    assert healthz()["release"] == before
    code = (
        "from django.db.migrations.recorder import MigrationRecorder as R; "
        "print(R.Migration.objects.filter(app='shop', name='0099_broken').exists())"
    )
    assert django_eval(app, code) == "False"


def test_failing_healthz_after_the_switch_switches_back(app, serving):
    """The new release goes live, answers 500 everywhere: back to the previous one."""
    before = live_release(app)
    known = releases(app)
    middleware = (
        "from django.http import HttpResponseServerError\n\n\n"
        "class Broken:\n"
        "    def __init__(self, get_response):\n"
        "        self.get_response = get_response\n\n"
        "    def __call__(self, request):\n"
        '        return HttpResponseServerError("broken on purpose")\n'
    )
    settings = example("ocpizza/settings/production.py") + (
        '\nMIDDLEWARE = ["shop.broken.Broken", *MIDDLEWARE]  # noqa: F405\n'
    )
    push(
        [
            {"path": "shop/migrations/0099_broken.py", "state": "absent"},
            {"path": "shop/broken.py", "content": middleware},
            {"path": "ocpizza/settings/production.py", "content": settings},
        ],
        "Broken health check",
    )
    run = deploy("deploy-broken-healthz", app_healthz_timeout=10)
    assert run.rc != 0
    assert "Wait for /healthz" in run.output
    assert f"Release {before} is still live" in run.output
    assert "did not answer /healthz with" not in run.output
    assert live_release(app) == before
    assert releases(app) == known
    assert healthz()["release"] == before
    assert sh(app, "grep ^OCPIZZA_RELEASE= /etc/ocpizza/app.env") == f"OCPIZZA_RELEASE={before}"


def test_a_worker_crashing_at_import_after_the_switch_switches_back(app, serving):
    """The new release's WSGI module raises at import: its workers never boot and
    gunicorn gives up; the rescue makes the old release live again and gunicorn
    serves it (not only the "answers 500" case above)."""
    before = live_release(app)
    known = releases(app)
    wsgi = (
        example("ocpizza/wsgi.py") + '\nraise RuntimeError("worker crash at import on purpose")\n'
    )
    push(
        [
            {"path": "shop/broken.py", "state": "absent"},
            {
                "path": "ocpizza/settings/production.py",
                "src": str(EXAMPLE_DIR / "ocpizza/settings/production.py"),
            },
            {"path": "ocpizza/wsgi.py", "content": wsgi},
        ],
        "Worker crash at import",
    )
    run = deploy("deploy-import-crash", app_healthz_timeout=10)
    assert run.rc != 0
    assert f"Release {before} is still live" in run.output
    assert "did not answer /healthz with" not in run.output, "gunicorn did not come back"
    assert live_release(app) == before
    assert releases(app) == known, "the broken release is removed"
    assert "RUNNING" in sh(app, "supervisorctl status gunicorn")
    assert healthz()["release"] == before


def test_clone_error_leaves_the_previous_release_serving(app, serving):
    """A host key other than the pinned one: the fetch fails, nothing changes.

    The deploy entry point uses the known_hosts file site.yml pinned, so the
    test swaps an impostor's key into that file for the deploy, then puts the
    pinned one back.
    """
    before = live_release(app)
    known = releases(app)
    key = ephemeral_dir() / "impostor_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    impostor = " ".join(Path(f"{key}.pub").read_text().split()[:2])
    pinned = f"{CONF_HOME}/known_hosts"
    sh(app, f"cp -p {pinned} {pinned}.test-saved && echo '{FORGE} {impostor}' > {pinned}")
    try:
        run = deploy("deploy-clone-error")
    finally:
        sh(app, f"mv {pinned}.test-saved {pinned}")
    assert run.rc != 0
    assert "Host key verification failed" in run.output
    assert f"Release {before} is still live" in run.output
    assert live_release(app) == before
    assert releases(app) == known
    assert healthz()["release"] == before


def test_lock_out_of_date_with_its_pipfile_fails_with_pipenvs_message(app, serving):
    before = live_release(app)
    known = releases(app)
    venvs = sh(app, f"ls {APP_ROOT}/shared/venvs")
    pipfile = example("Pipfile").replace('openpyxl = ">=3.1"', 'openpyxl = ">=3.1"\nsix = "*"')
    push(
        [
            {"path": "Pipfile", "content": pipfile},
            {"path": "Pipfile.lock", "src": str(EXAMPLE_DIR / "Pipfile.lock")},
            {"path": "shop/broken.py", "state": "absent"},
            {
                "path": "ocpizza/settings/production.py",
                "src": str(EXAMPLE_DIR / "ocpizza/settings/production.py"),
            },
            {"path": "ocpizza/wsgi.py", "src": str(EXAMPLE_DIR / "ocpizza/wsgi.py")},
        ],
        "Pipfile changed without relocking",
    )
    run = deploy("deploy-stale-lock")
    assert run.rc != 0
    assert "Run pipenv install --deploy" in run.output
    assert re.search(r"Your Pipfile\.lock \([0-9a-f]+\) is out of date", run.output)
    assert f"Release {before} is still live" in run.output
    assert live_release(app) == before
    assert releases(app) == known
    assert sh(app, f"ls {APP_ROOT}/shared/venvs") == venvs, "the unfinished virtualenv is removed"
    assert healthz()["release"] == before


def example_zip(archive: Path) -> Path:
    """The example app as a ZIP archive in GitHub's layout (one top directory)."""
    subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "archive", "--format=zip", "--prefix=ocpizza-production/",
         "-o", str(archive), "HEAD:examples/ocpizza"],
        check=True,
    )  # fmt: skip
    return archive


def test_zip_source_deploy(app, serving, tmp_path):
    """§4.1.1: the code as a ZIP archive (GitHub's layout: one top directory)."""
    archive = example_zip(tmp_path / "ocpizza-production.zip")
    with zipfile.ZipFile(archive) as handle:
        assert "ocpizza-production/manage.py" in handle.namelist()
    run = deploy("deploy-zip", app_source="zip", app_zip_path=str(archive))
    assert run.rc == 0, run.output[-4000:]
    after = live_release(app)
    assert after.split("-")[1].startswith("z")
    assert sh(app, f"cat {APP_ROOT}/releases/{after}/REVISION").startswith("zip:sha256:")
    # Same lock as the first release: its virtualenv again, no pipenv.
    assert venv_of(app, after) == STATE.get("venv_a")
    assert task_was_skipped(run.output, PIPENV_TASK)
    assert healthz()["release"] == after
    assert 'id="build"' not in http_get("/", proxied=True).body


def test_a_link_out_of_the_release_is_refused_before_anything_runs(app, serving, tmp_path):
    """Finding 3: a static file that is a link to a root-only file (here in a
    ZIP archive; a commit works the same) stops the deploy before the build:
    nothing of /etc/shadow is collected, let alone published."""
    before = live_release(app)
    known = releases(app)
    archive = example_zip(tmp_path / "ocpizza-leak.zip")
    with zipfile.ZipFile(archive, "a") as handle:
        link = zipfile.ZipInfo("ocpizza-production/shop/static/shop/leak.css")
        link.create_system = 3  # Unix: the mode below is a symbolic link's
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        handle.writestr(link, "/etc/shadow")
    run = deploy("deploy-leak-link", app_source="zip", app_zip_path=str(archive))
    assert run.rc != 0
    assert (
        "shop/static/shop/leak.css points outside the release (/etc/shadow): refused" in run.output
    )
    assert f"Release {before} is still live" in run.output
    assert live_release(app) == before
    assert releases(app) == known
    secret = sh(app, "head -n 1 /etc/shadow")
    leaked = app.run(f"grep -rlsF -- {shlex.quote(secret)} {APP_ROOT}/releases/*/staticfiles")
    assert leaked.stdout == ""
    assert healthz()["release"] == before


def test_a_change_of_gunicorn_settings_reloads_it_gracefully(app, serving):
    pid = serving
    workers = set(sh(app, f"pgrep -P {pid}").split())
    run = ansible_playbook(
        "gunicorn.yml", {"gunicorn_max_requests": 999}, log_name="gunicorn-change"
    )
    assert run.rc == 0, run.output[-3000:]
    assert "Reload gunicorn gracefully for its new settings" in run.output
    assert "max_requests = 999" in sh(app, "cat /etc/ocpizza/gunicorn.conf.py")
    # Same master (a HUP, no restart), new workers.
    assert gunicorn_pid(app) == pid
    assert not set(sh(app, f"pgrep -P {pid}").split()) & workers
    assert healthz()["release"] == live_release(app)


def test_old_releases_and_unused_virtualenvs_are_removed(app):
    kept = releases(app)
    assert len(kept) <= 3  # app_keep_releases in this scenario
    live = live_release(app)
    previous = Path(sh(app, f"readlink {APP_ROOT}/previous")).name
    assert {live, previous} <= set(kept)
    used = {venv_of(app, release) for release in kept}
    present = set(sh(app, f"find {APP_ROOT}/shared/venvs -mindepth 1 -maxdepth 1 -type d").split())
    assert present == used
