"""The converged app server of the role's own scenario: what the HA lab cannot show.

The converged state every app server shares (user, configuration directory,
release layout, gunicorn under supervisor, the forge's deploy-key limits, the
schemas, the static files, no leftovers) is asserted on the HA lab, on every
app server, by tests/platform/test_40_app.py. Here: the environment file with
this scenario's awkward database password (the chain of filter, file and
Django copes with it), and gunicorn under supervisor surviving kills and
rotating its log.
"""

from __future__ import annotations

import os
import shlex
import time
from urllib.parse import unquote, urlsplit

from appscenario import (
    APP_ROOT,
    CONF_HOME,
    DB,
    DB_PASSWORD,
    ENV_FILE,
    gunicorn_pid,
    healthz,
    http_get,
    live_release,
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
    # The contract's metrics path, which nginx refuses and Prometheus scrapes.
    assert env["OCPIZZA_METRICS_PATH"] == "/metrics"
    assert env["GOOGLE_MAPS_API_KEY"] == "molecule-maps-key"
    # Optional services not configured are absent, not empty.
    assert not {"SENTRY_DSN", "PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET"} & env.keys()


def test_healthz_ok_with_the_database_reachable(app, serving):
    assert healthz() == {"status": "ok", "database": True, "release": live_release(app)}


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


def recovery_bound(seconds: float = 5.0, cap: float = 15.0) -> float:
    """The bound on a recovery that is CPU work (a new master imports Django): ``seconds``
    on a machine with a core to spare, stretched by how oversubscribed the machine is
    (the 1-minute load average per core; make test runs the platform beside the role
    scenarios), at most ``cap``."""
    per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    return min(cap, seconds * max(1.0, per_core))


def test_gunicorn_answers_again_within_5_s_after_each_of_ten_kills(app, serving):
    """An out-of-memory kill of the master, ten times in a row: its workers die
    with it (they would keep the port), and each time the new master answers
    /healthz within 5 s of the kill (on a machine with a core to spare; see
    recovery_bound)."""
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
        bound = recovery_bound()
        answer: object = None
        while time.monotonic() - killed < bound:
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
            f"kill {attempt}: no /healthz 200 within {bound:.1f} s ({answer}); so far {seconds}"
        )
        assert answer.json()["release"] == release
        # Supervisor counts a death within startsecs as a failed start: kill
        # the next master once it is RUNNING, as an out-of-memory kill would.
        new = wait_serving(app, deadline=30)
        assert new != pid
        pid = new
    print(f"recovery after each of ten kill -9: {seconds} s (bound {recovery_bound():.1f} s)")


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


SANDBOX_PROBE = """\
import socket

status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
for key in ("NoNewPrivs", "CapEff", "CapBnd", "Seccomp"):
    print(key, status[key].strip())
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)
    print("AF_NETLINK allowed")
except OSError as error:
    print("AF_NETLINK refused", error.errno)
"""


def test_gunicorn_runs_in_supervisors_systemd_sandbox(app, serving):
    """Finding 12: whatever supervisord starts (gunicorn, the app) runs in its
    systemd sandbox: no new privileges, root's capabilities down to switching
    user and signalling (CapEff e0: kill, setgid, setuid), a system call filter,
    no socket family but inet and unix. A probe program, run by supervisord as
    root like gunicorn's master, reports what it may do. The mount sandbox
    (ProtectSystem=strict, PrivateTmp, ProtectHome) is configured, but systemd
    skips it in a container without CAP_SYS_ADMIN: it acts on a server only."""
    probe = "/etc/ocpizza-sandbox-probe.py"
    program = "/etc/supervisor/conf.d/ocpizza-sandbox-probe.conf"
    log = "/var/log/ocpizza/sandbox-probe.log"
    sh(app, f"cat > {probe} <<'EOF'\n{SANDBOX_PROBE}EOF")
    sh(
        app,
        f"printf '%s\\n' '[program:ocpizza-sandbox-probe]' 'command=/usr/bin/python3 {probe}'"
        f" autostart=false autorestart=false startsecs=0 'stdout_logfile={log}'"
        f" redirect_stderr=true > {program}",
    )
    try:
        sh(
            app,
            "supervisorctl update ocpizza-sandbox-probe && supervisorctl start ocpizza-sandbox-probe",
        )
        deadline = time.monotonic() + 10
        while "AF_NETLINK" not in app.run(f"cat {log}").stdout and time.monotonic() < deadline:
            time.sleep(0.2)
        report = dict(line.split(" ", 1) for line in sh(app, f"cat {log}").splitlines())
    finally:
        sh(app, f"rm -f {program} {probe} {log}; supervisorctl update ocpizza-sandbox-probe")
    assert report["NoNewPrivs"] == "1"
    assert report["CapEff"] == report["CapBnd"] == "00000000000000e0"
    assert report["Seccomp"] == "2"
    assert report["AF_NETLINK"] == "refused 97"  # EAFNOSUPPORT
    shown = sh(
        app, "systemctl show supervisor -p ProtectSystem -p PrivateTmp -p ProtectHome"
    ).split()
    assert sorted(shown) == ["PrivateTmp=yes", "ProtectHome=yes", "ProtectSystem=strict"]
    assert gunicorn_pid(app) == serving, "the probe left gunicorn alone"
    exposure = sh(app, "systemd-analyze security --no-pager supervisor.service | tail -n 1")
    score = float(exposure.split(":")[1].split()[0])
    print(f"systemd-analyze security supervisor.service: {exposure}")
    assert score <= 3.0, exposure
