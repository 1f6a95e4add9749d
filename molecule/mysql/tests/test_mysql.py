"""Behaviour of role `mysql` an operator and an auditor rely on.

Every check goes through a real connection: the mysql client on the app host
against the database server's address, the backup account's dump, the
operator's systemctl commands, and ansible-playbook runs of the scenario's
converge playbook for the schema repository and the input checks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import container_ip

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "filter_plugins"))
from mysql_sizing import innodb_buffer_pool_size, mysql_max_connections  # noqa: E402
from ocpizza_gunicorn import gunicorn_workers  # noqa: E402

BOOKWORM, TRIXIE = "ocpizza-mol-mysql-bookworm", "ocpizza-mol-mysql-trixie"
DBS = [BOOKWORM, TRIXIE]
APP = "ocpizza-mol-mysql-app"  # also the git server
# Mirrors of molecule.yml.
APP_PASSWORD = "p@ss:w/rd#%?&-app"
BACKUP_PASSWORD = "b4ck'up\"pw#1\\x"
MIGRATION_PASSWORD = "m1gr@t'ion\"pw#2\\x"
# The scenario's CA, on every host (the role installs it on the servers,
# prepare.yml on the app host).
CA = "/etc/mysql/tls/ca.crt"
POOL_MAX_MB = {BOOKWORM: 384, TRIXIE: 512}
MAX_CONNECTIONS_MIN = 10
SERVER_ID = {BOOKWORM: 1, TRIXIE: 2}  # position in the dbservers group
CNF = "/etc/mysql/mariadb.conf.d/90-ocpizza.cnf"
BACKUP_CNF = "/etc/mysql/backup.cnf"
SCENARIO = Path(__file__).resolve().parents[1]
REFUSED = re.compile(r"not allowed to connect|Access denied")


def sql(host, query: str) -> str:
    """Run a query as root through the unix socket."""
    return host.check_output(f"mysql -N -B -e {shlex.quote(query)}")


def client(host, db_ip: str, user: str, password: str, query: str, tls: bool = True):
    """The mysql client on ``host``, over TCP to ``db_ip``: TLS verified against the CA
    (the server's certificate and its address), or plaintext with ``tls=False``."""
    tls_options = f"--ssl --ssl-ca={CA} --ssl-verify-server-cert" if tls else "--skip-ssl"
    return host.run(
        f"mysql --protocol=tcp -h {db_ip} -u {user} -p{shlex.quote(password)} {tls_options} "
        f"-N -B -e {shlex.quote(query)}"
    )


def variables(host) -> dict[str, str]:
    rows = sql(host, "SHOW GLOBAL VARIABLES").splitlines()
    return dict(line.split("\t", 1) for line in rows if "\t" in line)


def playbook(
    name: str,
    *extra: str,
    hosts: tuple[str, ...] = (BOOKWORM,),
    check: bool = False,
    json_report: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run one of the scenario's playbooks as molecule does, on some db hosts (and the app host)."""
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        os.environ["MOLECULE_INVENTORY_FILE"],
        str(SCENARIO / name),
        "--limit",
        ",".join([*hosts, APP]),
        *extra,
    ]
    if check:
        argv.append("--check")
    # JSON results: messages appear as written (YAML would double their quotes).
    env = {
        **os.environ,
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    if json_report:
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, env=env)


def converge(
    *extra: str, hosts: tuple[str, ...] = (BOOKWORM,), check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the scenario's converge playbook (the role's main entry point)."""
    return playbook("converge.yml", *extra, hosts=hosts, check=check)


def apply_schema(check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the role's schema entry point alone on the Debian 12 host."""
    return playbook("schema.yml", check=check)


def recap(res: subprocess.CompletedProcess[str], host: str) -> dict[str, int]:
    """The PLAY RECAP counters of one host."""
    line = next(x for x in res.stdout.split("PLAY RECAP")[-1].splitlines() if x.startswith(host))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def changed_tasks(res: subprocess.CompletedProcess[str], host: str) -> list[str]:
    """Names of the tasks that reported a change on one host."""
    names, task = [], ""
    for line in res.stdout.splitlines():
        if line.startswith("TASK ["):
            task = line[6 : line.rindex("]")]
        elif line.startswith(f"changed: [{host}]"):
            names.append(task)
    return names


def forge(get_host, script: str, message: str) -> None:
    """Commit a change to database.git's main branch, as a developer would."""
    git = "git -c user.name=t -c user.email=t@t"
    get_host(APP).check_output(
        f"cd /srv/work && {git} fetch -q origin && {git} reset -q --hard origin/main && {script}"
        f" && git add -A && (git diff --cached --quiet || {git} commit -qm {shlex.quote(message)})"
        f" && {git} push -q origin HEAD:main && chown -R git:git /srv/git"
    )


def ledger(host) -> dict[str, str]:
    rows = sql(host, "SELECT filename, sha256 FROM oc_pizza.schema_migrations").splitlines()
    return dict(row.split("\t") for row in rows)


# --- Service --------------------------------------------------------------------


@pytest.mark.parametrize("name", DBS)
def test_service_active_enabled_and_named_mysql(get_host, name):
    host = get_host(name)
    assert host.service("mariadb").is_running
    assert host.service("mariadb").is_enabled
    assert host.check_output("systemctl is-active mysql") == "active"
    assert host.check_output("systemctl show --property=Id --value mysql") == "mariadb.service"


@pytest.mark.parametrize("name", DBS)
def test_operator_stop_and_start_mysql(get_host, name):
    host = get_host(name)
    host.check_output("systemctl stop mysql")
    assert host.run("systemctl is-active mariadb").stdout.strip() == "inactive"
    host.check_output("systemctl start mysql")
    assert host.check_output("systemctl is-active mariadb") == "active"
    assert sql(host, "SELECT 1") == "1"


@pytest.mark.parametrize("name", DBS)
def test_named_time_zones_are_known(get_host, name):
    """Django (USE_TZ) converts dates with CONVERT_TZ to the app's named zone: the admin's
    order list (date_hierarchy) answers 500 when the server does not know the zone."""
    host = get_host(name)
    assert sql(host, "SELECT CONVERT_TZ('2026-11-30 12:00', 'UTC', 'Europe/Paris')") == (
        "2026-11-30 13:00:00"
    )


@pytest.mark.parametrize("name", DBS)
def test_listens_only_on_the_private_address(get_host, name):
    host = get_host(name)
    listening = host.check_output("ss -Hltn 'sport = :3306'").splitlines()
    assert [line.split()[3] for line in listening] == [f"{container_ip(name)}:3306"]
    assert not host.socket("tcp://0.0.0.0:3306").is_listening
    assert not host.socket("tcp://127.0.0.1:3306").is_listening


# --- Secure installation ----------------------------------------------------------


@pytest.mark.parametrize("name", DBS)
def test_root_is_refused_over_tcp(get_host, name):
    for source in (name, APP):
        for password in ("", "insecure"):
            res = client(get_host(source), container_ip(name), "root", password, "SELECT 1")
            assert res.rc != 0
            assert REFUSED.search(res.stderr), res.stderr


@pytest.mark.parametrize("name", DBS)
def test_root_logs_in_through_the_socket_only_as_the_system_root(get_host, name):
    host = get_host(name)
    assert sql(host, "SELECT CURRENT_USER()") == "root@localhost"
    create = sql(host, "SHOW CREATE USER root@localhost")
    assert create.endswith("IDENTIFIED VIA unix_socket"), create
    # Another system user cannot become root with a password, even the one
    # prepare.yml gave root on the Debian 12 host.
    res = host.run("runuser -u nobody -- mysql -u root -pinsecure -e 'SELECT 1'")
    assert res.rc != 0 and "Access denied" in res.stderr


@pytest.mark.parametrize("name", DBS)
def test_no_anonymous_user_no_test_db_no_remote_root(get_host, name):
    host = get_host(name)
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE user = ''") == "0"
    assert (
        sql(host, "SELECT COUNT(*) FROM mysql.user WHERE user = 'root' AND host <> 'localhost'")
        == "0"
    )
    assert sql(host, "SELECT COUNT(*) FROM mysql.db WHERE db LIKE 'test%'") == "0"
    assert "test" not in sql(host, "SHOW DATABASES").split()


@pytest.mark.parametrize("name", DBS)
def test_accounts_are_exactly_root_the_app_servers_and_the_local_backup(get_host, name):
    host = get_host(name)
    accounts = set(sql(host, "SELECT CONCAT(user, '@', host) FROM mysql.user").split())
    # mysql@localhost and mariadb.sys@localhost are the package's own
    # (unix socket only, and a locked definer account).
    assert accounts == {
        "root@localhost",
        "mysql@localhost",
        "mariadb.sys@localhost",
        f"oc_pizza@{container_ip(APP)}",
        "oc_pizza_backup@localhost",
        "oc_pizza_migration@localhost",
    }


# --- The application's account ------------------------------------------------------


@pytest.mark.parametrize("name", DBS)
def test_app_user_from_app_host_sees_only_its_database(get_host, name):
    app, db_ip = get_host(APP), container_ip(name)
    res = client(app, db_ip, "oc_pizza", APP_PASSWORD, "SHOW DATABASES")
    assert res.rc == 0, res.stderr
    assert sorted(res.stdout.split()) == ["information_schema", "oc_pizza"]
    grants = client(app, db_ip, "oc_pizza", APP_PASSWORD, "SHOW GRANTS").stdout
    assert "GRANT ALL PRIVILEGES ON `oc_pizza`.* TO `oc_pizza`@" in grants
    assert "GRANT USAGE ON *.* TO `oc_pizza`@" in grants
    assert "WITH GRANT OPTION" not in grants
    work = client(
        app,
        db_ip,
        "oc_pizza",
        APP_PASSWORD,
        "CREATE TABLE IF NOT EXISTS oc_pizza.app_probe (id INT); "
        "SELECT COUNT(*) FROM oc_pizza.app_probe",
    )
    assert work.rc == 0, work.stderr
    other = client(app, db_ip, "oc_pizza", APP_PASSWORD, "SELECT COUNT(*) FROM mysql.user")
    assert other.rc != 0 and "denied" in other.stderr


# Issue 15, finding 8: the app's connection is TLS, verified against the platform's CA.
PYMYSQL_PROBE = """
import json, sys, pymysql
host, password, ca = sys.argv[1:4]
try:
    conn = pymysql.connect(host=host, user="oc_pizza", password=password, database="oc_pizza",
                           ssl={"ca": ca, "check_hostname": True}, connect_timeout=10)
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
cur = conn.cursor()
cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_cipher', 'Ssl_version')")
print(json.dumps(dict(cur.fetchall())))
"""


def pymysql_probe(host, db_ip: str, ca: str) -> dict[str, str]:
    """Connect as the app does (PyMySQL, ssl ca + check_hostname): the session's TLS status."""
    out = host.check_output(
        f"python3 -c {shlex.quote(PYMYSQL_PROBE)} {db_ip} {shlex.quote(APP_PASSWORD)} {ca}"
    )
    return json.loads(out)


@pytest.mark.parametrize("name", DBS)
def test_app_user_plaintext_is_refused(get_host, name):
    res = client(get_host(APP), container_ip(name), "oc_pizza", APP_PASSWORD, "SELECT 1", tls=False)
    assert res.rc != 0
    assert "Access denied" in res.stderr, res.stderr
    grants = sql(get_host(name), f"SHOW CREATE USER 'oc_pizza'@'{container_ip(APP)}'")
    assert "REQUIRE SSL" in grants, grants


@pytest.mark.parametrize("name", DBS)
def test_app_connection_is_encrypted_and_the_server_verified(get_host, name):
    app, db_ip = get_host(APP), container_ip(name)
    status = pymysql_probe(app, db_ip, CA)
    assert status.get("Ssl_version") in ("TLSv1.2", "TLSv1.3"), status
    assert status.get("Ssl_cipher"), status
    # A client that trusts another CA (the system's) refuses the server.
    refused = pymysql_probe(app, db_ip, "/etc/ssl/certs/ca-certificates.crt")
    assert "certificate verify failed" in refused.get("error", ""), refused


@pytest.mark.parametrize("name", DBS)
def test_the_server_certificate_names_its_address_and_its_key_stays_private(get_host, name):
    host = get_host(name)
    text = host.check_output("openssl x509 -noout -text -in /etc/mysql/tls/server.crt")
    assert f"IP Address:{container_ip(name)}" in text
    assert f"DNS:{name}" in text
    assert "OC Pizza molecule CA" in host.check_output(
        "openssl x509 -noout -issuer -in /etc/mysql/tls/server.crt"
    )
    key = host.file("/etc/mysql/tls/server.key")
    assert (key.user, key.mode) == ("mysql", 0o600)
    assert host.file("/etc/mysql/tls").mode == 0o750
    got = variables(host)
    assert got["tls_version"] == "TLSv1.2,TLSv1.3"


@pytest.mark.parametrize("name", DBS)
def test_app_user_refused_from_any_other_host(get_host, name):
    for other in DBS:  # the other database server, and the server itself over TCP
        res = client(get_host(other), container_ip(name), "oc_pizza", APP_PASSWORD, "SELECT 1")
        assert res.rc != 0
        assert REFUSED.search(res.stderr), res.stderr


# --- Configuration ----------------------------------------------------------------


@pytest.mark.parametrize("name", DBS)
def test_configured_values_in_effect(get_host, name):
    host = get_host(name)
    got = variables(host)
    mem_mb = int(host.check_output("awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo"))
    pool_mb = innodb_buffer_pool_size(mem_mb, maximum_mb=POOL_MAX_MB[name])
    workers = gunicorn_workers(int(get_host(APP).check_output("nproc")))
    assert int(got["innodb_buffer_pool_size"]) == pool_mb * 1024 * 1024
    assert (
        int(got["max_connections"])
        == mysql_max_connections([workers], minimum=MAX_CONNECTIONS_MIN)
        == workers * 2 + 20
    )
    assert got["bind_address"] == container_ip(name)
    assert got["port"] == "3306"
    assert got["skip_name_resolve"] == "ON"
    assert got["local_infile"] == "OFF"
    assert got["character_set_server"] == "utf8mb4"
    assert got["collation_server"] == "utf8mb4_unicode_ci"
    assert got["slow_query_log"] == "ON"
    assert got["slow_query_log_file"] == "/var/log/mysql/mariadb-slow.log"
    assert float(got["long_query_time"]) == 1.0
    assert got["log_bin"] == "ON"
    assert got["binlog_format"] == "ROW"
    assert got["sync_binlog"] == "1"
    assert got["binlog_expire_logs_seconds"] == str(7 * 86400)
    assert got["server_id"] == str(SERVER_ID[name])
    if "character_set_collations" in got:  # MariaDB 11
        assert "utf8mb4=utf8mb4_unicode_ci" in got["character_set_collations"]
    charset = sql(
        host,
        "SELECT default_character_set_name, default_collation_name "
        "FROM information_schema.schemata WHERE schema_name = 'oc_pizza'",
    )
    assert charset == "utf8mb4\tutf8mb4_unicode_ci"


@pytest.mark.parametrize("name", DBS)
def test_configuration_is_one_file_of_the_roles_own(get_host, name):
    host = get_host(name)
    cnf = host.file(CNF)
    assert cnf.user == "root" and cnf.mode == 0o644
    assert "Ansible managed" in cnf.content_string
    # No packaged file was edited.
    assert host.run("dpkg --verify mariadb-server mariadb-common mysql-common").stdout == ""


@pytest.mark.parametrize("name", DBS)
def test_slow_queries_are_logged(get_host, name):
    host = get_host(name)
    sql(host, "SELECT SLEEP(1.2), 'ocpizza-slow-probe'")
    assert "ocpizza-slow-probe" in host.check_output("cat /var/log/mysql/mariadb-slow.log")


# --- The backup account -------------------------------------------------------------


@pytest.mark.parametrize("name", DBS)
def test_backup_user_takes_a_consistent_dump_with_every_object(get_host, name):
    host = get_host(name)
    cnf = host.file(BACKUP_CNF)
    assert (cnf.user, cnf.group, cnf.mode) == ("root", "root", 0o600)
    dump = host.run(
        f"mysqldump --defaults-extra-file={BACKUP_CNF} --single-transaction "
        "--routines --triggers --events --master-data=2 oc_pizza"
    )
    assert dump.rc == 0, dump.stderr
    assert dump.stderr.strip() == ""  # no "insufficient privileges" warning
    out = dump.stdout
    assert re.search(
        r"-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin\.\d+', MASTER_LOG_POS=\d+", out
    )
    assert "INSERT INTO `audit_log`" in out
    assert "VIEW `audit_log_recent`" in out
    assert "TRIGGER audit_log_actor_lower" in out
    assert "PROCEDURE `audit_log_purge`" in out and "ROW_COUNT()" in out
    assert "EVENT `audit_log_nightly_purge`" in out


@pytest.mark.parametrize("name", DBS)
def test_backup_user_can_read_and_nothing_more(get_host, name):
    host = get_host(name)
    as_backup = f"mysql --defaults-extra-file={BACKUP_CNF} -N -B -e "
    grants = host.check_output(as_backup + shlex.quote("SHOW GRANTS"))
    assert "GRANT USAGE ON *.* TO `oc_pizza_backup`@`localhost`" in grants
    assert "GRANT SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON `oc_pizza`.*" in grants
    assert "GRANT SELECT ON `mysql`.`proc`" in grants
    assert len(grants.splitlines()) == 3  # no global privilege besides USAGE
    for statement in (
        "DROP TABLE oc_pizza.audit_log",
        "INSERT INTO oc_pizza.audit_log (actor, action) VALUES ('x', 'y')",
        "SELECT COUNT(*) FROM mysql.user",
    ):
        res = host.run(as_backup + shlex.quote(statement))
        assert res.rc != 0 and "denied" in res.stderr, statement
    # Local only: the same credentials are refused over the network.
    res = client(get_host(APP), container_ip(name), "oc_pizza_backup", BACKUP_PASSWORD, "SELECT 1")
    assert res.rc != 0 and REFUSED.search(res.stderr), res.stderr


# --- The migration account (issue 15, finding 1) -----------------------------------


def as_migration(host, query: str):
    """The migration account, locally through the socket, as mysql_schema_apply connects."""
    return host.run(
        f"mysql -u oc_pizza_migration -p{shlex.quote(MIGRATION_PASSWORD)} -N -B "
        f"-e {shlex.quote(query)}"
    )


@pytest.mark.parametrize("name", DBS)
def test_migration_account_has_ddl_on_the_database_and_nothing_else(get_host, name):
    host = get_host(name)
    grants = as_migration(host, "SHOW GRANTS")
    assert grants.rc == 0, grants.stderr
    lines = grants.stdout.splitlines()
    assert len(lines) == 2, lines  # USAGE on *.*, and the database's privileges
    assert lines[0].startswith("GRANT USAGE ON *.* TO `oc_pizza_migration`@`localhost`")
    assert " ON `oc_pizza`.* TO `oc_pizza_migration`@`localhost`" in lines[1]
    for privilege in ("CREATE", "ALTER", "DROP", "INDEX", "REFERENCES", "SELECT", "INSERT"):
        assert privilege in lines[1]
    for forbidden in ("FILE", "SUPER", "GRANT OPTION", "ALL PRIVILEGES", "PROCESS", "RELOAD"):
        assert forbidden not in grants.stdout, forbidden
    for statement in (
        "SELECT COUNT(*) FROM mysql.user",
        "CREATE DATABASE ocpizza_other",
        "CREATE TABLE mysql.ocpizza_probe (id INT)",
        "GRANT SELECT ON oc_pizza.* TO 'oc_pizza'@'localhost'",
    ):
        res = as_migration(host, statement)
        assert res.rc != 0 and "denied" in res.stderr, (statement, res.stdout, res.stderr)
    # No FILE privilege: the server reads no file for it (NULL, not the content).
    assert as_migration(host, "SELECT LOAD_FILE('/etc/mysql/backup.cnf')").stdout.strip() == "NULL"
    # Local only: the same credentials are refused over the network.
    res = client(
        get_host(APP), container_ip(name), "oc_pizza_migration", MIGRATION_PASSWORD, "SELECT 1"
    )
    assert res.rc != 0 and REFUSED.search(res.stderr), res.stderr


def test_schema_objects_are_defined_by_the_migration_account_not_root(get_host):
    host = get_host(TRIXIE)  # converged from nothing: every file applied by the new account
    definers = sql(
        host,
        "SELECT DISTINCT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'oc_pizza' "
        "UNION SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'oc_pizza' "
        "UNION SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'oc_pizza' "
        "UNION SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'oc_pizza'",
    )
    assert definers.split() == ["oc_pizza_migration@localhost"]


# --- Schema repository ------------------------------------------------------------


@pytest.mark.parametrize("name", DBS)
def test_schema_files_applied_exactly_once(get_host, name):
    host, git = get_host(name), get_host(APP)
    files = [
        f
        for f in git.check_output(
            "git --git-dir=/srv/git/database.git ls-tree --name-only main"
        ).split()
        if f.endswith(".sql")
    ]
    assert files[:3] == [
        "001_create_audit_log.sql",
        "002_seed_audit_log.sql",
        "003_reporting_objects.sql",
    ]
    recorded = ledger(host)
    for f in files:  # each file of main recorded once (primary key), with its checksum
        digest = git.check_output(
            f"git --git-dir=/srv/git/database.git show main:{f} | sha256sum"
        ).split()[0]
        assert recorded[f] == digest
    # 002 inserts one row: the idempotence converge did not apply it again.
    assert sql(host, "SELECT COUNT(*) FROM oc_pizza.audit_log WHERE actor = 'schema'") == "1"
    assert sql(host, "SELECT action FROM oc_pizza.audit_log WHERE actor = 'schema'") == (
        "créé — pizza 🍕"
    )


def test_schema_checkout_uses_the_pinned_key(get_host):
    host = get_host(BOOKWORM)
    assert host.file("/var/lib/ocpizza-schema/deploy_key").mode == 0o600
    assert host.file("/var/lib/ocpizza-schema").mode == 0o700
    known = host.file("/var/lib/ocpizza-schema/known_hosts").content_string
    assert known.startswith(f"{APP} ssh-ed25519 ")


# The next four tests run in this order on the Debian 12 host, each from the
# state the previous one left: they follow database.git through a release
# with a new file and a broken one, a tampered file, and the fix. The fixture
# puts main back to the scenario's files afterwards, so verify can run again.
STAMP = int(time.time())
NEW = f"100_verify_{STAMP}.sql"
BROKEN = f"101_broken_{STAMP}.sql"


@pytest.fixture(scope="module")
def schema_release(get_host):
    new_sql = f"INSERT INTO audit_log (actor, action) VALUES ('verify', '{NEW}');"
    forge(
        get_host,
        f"echo {shlex.quote(new_sql)} > {NEW}"
        f" && echo 'INSERT INTO no_such_table VALUES (1);' > {BROKEN}",
        "add a new file and a broken one",
    )
    yield
    forge(
        get_host,
        "git rm -q --ignore-unmatch '1*_*.sql'"
        " && git checkout $(git rev-list --max-parents=0 HEAD) -- .",
        "back to the fixture",
    )


def verify_rows(db) -> str:
    return sql(db, f"SELECT COUNT(*) FROM oc_pizza.audit_log WHERE action = '{NEW}'")


def test_check_mode_lists_the_new_files_and_applies_none(get_host, schema_release):
    db = get_host(BOOKWORM)
    before = ledger(db)
    res = apply_schema(check=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"would apply ['{NEW}', '{BROKEN}']" in res.stdout
    assert ledger(db) == before
    assert verify_rows(db) == "0"


def test_a_failing_file_stops_the_run_and_is_not_recorded(get_host, schema_release):
    db = get_host(BOOKWORM)
    res = apply_schema()
    assert res.returncode != 0
    assert recap(res, BOOKWORM)["failed"] == 1
    assert f"{BROKEN} failed and was not recorded" in res.stderr
    assert "Table 'oc_pizza.no_such_table' doesn't exist" in res.stderr
    recorded = ledger(db)
    assert BROKEN not in recorded
    assert NEW in recorded  # applied before it, once
    assert verify_rows(db) == "1"


def test_a_tampered_applied_file_stops_the_run(get_host, schema_release):
    db = get_host(BOOKWORM)
    before = ledger(db)
    forge(
        get_host,
        f"git rm -q {BROKEN} && echo '-- edited later' >> 001_create_audit_log.sql",
        "drop the broken file, tamper with 001",
    )
    res = apply_schema()
    assert res.returncode != 0
    assert recap(res, BOOKWORM)["failed"] == 1
    assert "changed since they were applied: 001_create_audit_log.sql" in res.stderr
    assert ledger(db) == before


def test_a_rerun_with_nothing_new_changes_nothing(get_host, schema_release):
    db = get_host(BOOKWORM)
    forge(
        get_host,
        "git checkout $(git rev-list --max-parents=0 HEAD) -- 001_create_audit_log.sql",
        "restore 001",
    )
    res = apply_schema()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # The checkout moves to the fixed revision; no SQL runs (molecule's
    # idempotence step shows changed=0 for a rerun of the same revision).
    assert changed_tasks(res, BOOKWORM) == ["mysql : Fetch the schema repository"]
    assert "applied []" in res.stdout
    assert verify_rows(db) == "1"  # the new file was not applied again


# Issue 15, finding 1: a file of database.git is SQL, never a root shell on the
# database host. Each case commits its file, runs the schema entry point,
# checks that nothing ran and that the marker file did not appear, and takes
# the file out of the repository again.
EVIL = [
    # Refused by the module before anything is applied (client commands).
    ("evil_shell", "\\! touch /tmp/pwned_schema", "never mysql client commands"),
    # Long form, not in the module's scan: --binary-mode sends it to the server,
    # which refuses it as SQL, so it stays inert.
    ("evil_long", "system touch /tmp/pwned_schema", "failed and was not recorded"),
    # A link to a root-only file is never read.
    ("evil_link", None, "not symbolic links or paths outside it"),
]


@pytest.mark.parametrize(("stem", "line", "message"), EVIL, ids=[e[0] for e in EVIL])
def test_a_schema_file_never_runs_client_commands(get_host, stem, line, message):
    db = get_host(BOOKWORM)
    db.run("rm -f /tmp/pwned_schema")
    before = ledger(db)
    name = f"102_{stem}_{STAMP}.sql"
    create = (
        f"ln -s {BACKUP_CNF} {name}"
        if line is None
        else f"printf '%s\\n' 'SELECT 1;' {shlex.quote(line)} 'SELECT 2;' > {name}"
    )
    forge(get_host, create, f"add {name}")
    try:
        res = apply_schema()
        assert res.returncode != 0, res.stdout[-3000:]
        assert recap(res, BOOKWORM)["failed"] == 1
        assert message in res.stderr, res.stderr[-3000:]
        assert name in res.stderr
        assert not db.file("/tmp/pwned_schema").exists
        assert ledger(db) == before
    finally:
        forge(get_host, f"git rm -q {name}", f"remove {name}")
        # Back on main's revision (the file gone, nothing to apply), as the
        # check-mode tests that follow expect the checkout to be.
        apply_schema()


# --- Check mode ------------------------------------------------------------------


def changed_steps(res: subprocess.CompletedProcess[str], host: str) -> list[str]:
    """Names of the tasks and handlers that reported a change on one host, in order."""
    names, step = [], ""
    for line in res.stdout.splitlines():
        found = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\]", line)
        if found:
            step = found.group(1)
        elif line.startswith(f"changed: [{host}]") and step not in names:
            names.append(step)
    return names


def test_check_mode_on_a_converged_server_changes_nothing_and_names_a_change(get_host):
    # What an operator runs before any change (site.yml --check --diff): on a
    # converged server it completes and reports nothing to do...
    res = converge("--diff", check=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert recap(res, BOOKWORM)["changed"] == 0, changed_steps(res, BOOKWORM)
    # ...and with one setting changed, exactly the file it lives in and the
    # restart that applies it, with the new line in the diff.
    res = converge("--diff", "-e", "mysql_long_query_time=7", check=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert changed_steps(res, BOOKWORM) == [
        "mysql : Write the server configuration",
        "mysql : Restart mysql",
    ]
    assert "+long_query_time = 7" in res.stdout
    assert "long_query_time = 7" not in get_host(BOOKWORM).file(CNF).content_string


# --- Bad inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"vault_mysql_app_password": ""}, "Set vault_mysql_app_password"),
        ({"vault_mysql_backup_password": ""}, "Set vault_mysql_backup_password"),
        (
            {"mysql_bind_address": "10.0.0.300"},
            "mysql_bind_address must be an IPv4/IPv6 address or a host name, got '10.0.0.300'",
        ),
        (
            {"mysql_bind_address": "not an ip!"},
            "mysql_bind_address must be an IPv4/IPv6 address or a host name, got 'not an ip!'",
        ),
        # A value only the server's parser can judge: the candidate file is
        # refused before it replaces the live one, so no restart happens.
        (
            {"mysql_extra_config": "innodb_log_file_size = lots"},
            "Unknown suffix 'l' used for variable 'innodb-log-file-size'",
        ),
    ],
    ids=[
        "missing-app-password",
        "missing-backup-password",
        "bind-10.0.0.300",
        "bind-not-an-ip",
        "server-refuses-value",
    ],
)
def test_bad_inputs_stop_before_any_change(get_host, extra, message):
    db = get_host(BOOKWORM)
    checksum = db.check_output(f"sha256sum {CNF}")
    started = db.check_output("systemctl show --property=ActiveEnterTimestamp mariadb")
    res = converge("-e", json.dumps(extra))
    assert res.returncode != 0
    assert message in res.stderr
    counters = recap(res, BOOKWORM)
    assert counters["failed"] == 1 and counters["changed"] == 0
    assert db.check_output(f"sha256sum {CNF}") == checksum
    assert db.check_output("systemctl show --property=ActiveEnterTimestamp mariadb") == started


# --- Entry points: check.yml and control.yml --------------------------------------
# Run as the runbook playbooks run them (include_role tasks_from), through
# service.yml; the JSON report gives each host's recorded facts and failures.


def entry_point(entry: str, *extra: str, host: str = TRIXIE) -> tuple[int, dict]:
    """Run tasks/<entry>.yml of the role on one db host; its exit code and JSON report."""
    res = playbook(
        "service.yml", "-e", f"mysql_test_entry={entry}", *extra, hosts=(host,), json_report=True
    )
    # The JSON document is the lines from "{" to "}"; profile_tasks prints around it.
    lines = res.stdout.splitlines()
    start, end = lines.index("{"), len(lines) - lines[::-1].index("}")
    return res.returncode, json.loads("\n".join(lines[start:end]))


def host_results(report: dict, host: str) -> list[dict]:
    """Every task result of one host, in order, with the task's name."""
    return [
        {**task["hosts"][host], "task": task["task"]["name"]}
        for play in report["plays"]
        for task in play["tasks"]
        if host in task["hosts"]
    ]


def recorded(report: dict, host: str) -> dict:
    """What the entry point left in the host facts ocpizza_checks and ocpizza_service_states."""
    return next(
        r["msg"]
        for r in host_results(report, host)
        if r["task"] == "Show what the entry point recorded"
    )


def failure(report: dict, host: str) -> str:
    return next(r["msg"] for r in host_results(report, host) if r.get("failed"))


def control(action: str, host: str = TRIXIE) -> tuple[int, dict]:
    return entry_point("control", "-e", json.dumps({"mysql_service_action": action}), host=host)


def started_at(host) -> str:
    return host.check_output("systemctl show --property=ActiveEnterTimestamp mariadb")


def test_check_reports_a_healthy_server():
    for name in DBS:
        rc, report = entry_point("check", host=name)
        assert rc == 0, report
        [check] = recorded(report, name)["checks"]
        assert check["name"] == f"mysql up on {name}"
        assert check["ok"] is True
        assert "is alive" in check["detail"]
        assert report["stats"][name]["changed"] == 0


def test_stop_makes_the_check_fail_with_a_clear_message_and_start_heals(get_host):
    host = get_host(TRIXIE)
    try:
        rc, report = control("stop")
        assert rc == 0, report
        assert host.run("systemctl is-active mariadb").stdout.strip() == "inactive"
        assert recorded(report, TRIXIE)["service_states"] == [
            {"component": "mysql", "state": "inactive"}
        ]
        assert any(
            r.get("msg") == f"{TRIXIE}: mysql is inactive" for r in host_results(report, TRIXIE)
        )
        # Fail fast (the default): the host fails, naming what is unhealthy.
        rc, report = entry_point("check")
        assert rc != 0
        message = failure(report, TRIXIE)
        assert f"mysql is unhealthy on {TRIXIE}" in message
        assert "Can't connect to local server" in message
        # verify.yml's mode: the check is recorded as failed, the play goes on.
        rc, report = entry_point("check", "-e", '{"ocpizza_checks_fail_fast": false}')
        assert rc == 0, report
        [check] = recorded(report, TRIXIE)["checks"]
        assert check["ok"] is False
        assert "Can't connect to local server" in check["detail"]
        # start brings it back, and the check passes again.
        rc, report = control("start")
        assert rc == 0, report
        assert recorded(report, TRIXIE)["service_states"] == [
            {"component": "mysql", "state": "active"}
        ]
        rc, report = entry_point("check")
        assert rc == 0, report
        assert recorded(report, TRIXIE)["checks"][0]["ok"] is True
    finally:
        host.run("systemctl start mariadb")


def test_control_refuses_an_unknown_action_before_any_change(get_host):
    host = get_host(TRIXIE)
    before = started_at(host)
    rc, report = control("bounce")
    assert rc != 0
    message = failure(report, TRIXIE)
    assert "must be one of start, stop, restart, reload, status" in message
    assert 'got "bounce"' in message
    assert report["stats"][TRIXIE]["changed"] == 0
    assert started_at(host) == before
    assert host.check_output("systemctl is-active mariadb") == "active"


def test_control_status_reload_and_restart(get_host):
    host = get_host(TRIXIE)
    before = started_at(host)
    rc, report = control("status")
    assert rc == 0 and report["stats"][TRIXIE]["changed"] == 0, report
    assert recorded(report, TRIXIE)["service_states"] == [{"component": "mysql", "state": "active"}]
    # reload re-reads the grant tables: the server keeps running.
    rc, report = control("reload")
    assert rc == 0, report
    assert started_at(host) == before
    rc, report = control("restart")
    assert rc == 0, report
    assert started_at(host) != before
    assert sql(host, "SELECT 1") == "1"
