"""Behaviour of role `mysql` an operator and an auditor rely on."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import container_ip

DBS = ["ocpizza-mol-db-bookworm", "ocpizza-mol-db-trixie"]
APP = "ocpizza-mol-db-app"
APP_PASSWORD = "p@ss:w/rd#%?&-app"
SCENARIO = Path(__file__).resolve().parents[1]
CNF = "/etc/mysql/mariadb.conf.d/90-ocpizza.cnf"


def sql(host, query: str) -> str:
    """Run a query as root through the unix socket."""
    return host.check_output(f"mysql -N -B -e {shlex.quote(query)}")


def app_mysql(host, db_ip: str, query: str):
    return host.run(
        f"mysql -h {db_ip} -u oc_pizza -p{shlex.quote(APP_PASSWORD)} -N -B -e {shlex.quote(query)}"
    )


def converge(*extra: str) -> subprocess.CompletedProcess[str]:
    """Run the scenario's converge playbook again, as molecule does."""
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         str(SCENARIO / "converge.yml"), *extra],
        capture_output=True, text=True, timeout=900, check=False, env=os.environ.copy(),
    )


def forge_commit(get_host, script: str) -> None:
    forge = get_host(APP)
    forge.check_output(
        "cd /srv/work && " + script
        + " && git -c user.name=t -c user.email=t@t commit -qam test"
        + " && git push -q origin HEAD:main && chown -R git:git /srv/git"
    )


@pytest.mark.parametrize("name", DBS)
def test_service_active_enabled_and_named_mysql(get_host, name):
    host = get_host(name)
    assert host.service("mariadb").is_running
    assert host.service("mariadb").is_enabled
    assert host.check_output("systemctl is-active mysql") == "active"


@pytest.mark.parametrize("name", DBS)
def test_operator_stop_and_start_mysql(get_host, name):
    host = get_host(name)
    host.check_output("systemctl stop mysql")
    assert host.run("systemctl is-active mariadb").stdout.strip() == "inactive"
    host.check_output("systemctl start mysql")
    assert host.check_output("systemctl is-active mariadb") == "active"


@pytest.mark.parametrize("name", DBS)
def test_listens_only_on_the_private_address(get_host, name):
    host = get_host(name)
    listening = host.check_output("ss -Hltn 'sport = :3306'").split("\n")
    assert [line.split()[3] for line in listening] == [f"{container_ip(name)}:3306"]


@pytest.mark.parametrize("name", DBS)
def test_root_is_refused_over_tcp(get_host, name):
    for client in (get_host(name), get_host(APP)):
        res = client.run(f"mysql -h {container_ip(name)} -u root -e 'SELECT 1'")
        assert res.rc != 0
        assert "not allowed to connect" in res.stderr or "Access denied" in res.stderr


@pytest.mark.parametrize("name", DBS)
def test_no_anonymous_user_no_test_db_no_remote_root(get_host, name):
    host = get_host(name)
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE user = ''") == "0"
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE user = 'root' AND host <> 'localhost'") == "0"
    assert "test" not in sql(host, "SHOW DATABASES").split()


@pytest.mark.parametrize("name", DBS)
def test_app_user_from_app_host_sees_only_its_database(get_host, name):
    res = app_mysql(get_host(APP), container_ip(name), "SHOW DATABASES")
    assert res.rc == 0, res.stderr
    assert sorted(res.stdout.split()) == ["information_schema", "oc_pizza"]
    grants = app_mysql(get_host(APP), container_ip(name), "SHOW GRANTS").stdout
    assert "ON `oc_pizza`.*" in grants and "ON *.*" in grants  # USAGE only on *.*
    assert "ALL PRIVILEGES ON *.*" not in grants


@pytest.mark.parametrize("name", DBS)
def test_app_user_refused_from_any_other_host(get_host, name):
    others = [n for n in DBS if n != name]
    for other in [name, *others]:
        res = app_mysql(get_host(other), container_ip(name), "SELECT 1")
        assert res.rc != 0
        assert "not allowed to connect" in res.stderr or "Access denied" in res.stderr


@pytest.mark.parametrize("name", DBS)
def test_configured_values_in_effect(get_host, name):
    host = get_host(name)
    rows = dict(
        line.split("\t") for line in sql(host, "SHOW GLOBAL VARIABLES").splitlines() if "\t" in line
    )
    mem_mb = int(host.check_output("awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo"))
    pool_mb = int(rows["innodb_buffer_pool_size"]) // 1024 // 1024
    assert pool_mb % 128 == 0 and 128 <= pool_mb <= max(mem_mb * 0.6, 128)
    assert rows["bind_address"] == container_ip(name)
    assert rows["character_set_server"] == "utf8mb4"
    assert rows["collation_server"] == "utf8mb4_unicode_ci"
    assert int(rows["max_connections"]) == 50  # one app host: 5 workers + 20, minimum 50
    assert rows["slow_query_log"] == "ON"
    assert float(rows["long_query_time"]) == 1.0
    assert rows["log_bin"] == "ON"
    assert rows["binlog_format"] == "ROW"
    assert rows["binlog_expire_logs_seconds"] == str(7 * 86400)
    charset = sql(host, "SELECT default_character_set_name, default_collation_name "
                        "FROM information_schema.schemata WHERE schema_name = 'oc_pizza'")
    assert charset == "utf8mb4\tutf8mb4_unicode_ci"


@pytest.mark.parametrize("name", DBS)
def test_backup_user_can_take_a_consistent_dump_and_nothing_more(get_host, name):
    host = get_host(name)
    assert host.file("/etc/mysql/backup.cnf").mode == 0o600
    dump = host.run(
        "mysqldump --defaults-extra-file=/etc/mysql/backup.cnf --single-transaction "
        "--routines --triggers --events --master-data=2 oc_pizza"
    )
    assert dump.rc == 0, dump.stderr
    assert "CHANGE MASTER TO MASTER_LOG_FILE" in dump.stdout
    assert "INSERT INTO `audit_log`" in dump.stdout
    denied = host.run("mysql --defaults-extra-file=/etc/mysql/backup.cnf -e 'DROP TABLE oc_pizza.audit_log'")
    assert denied.rc != 0 and "denied" in denied.stderr


@pytest.mark.parametrize("name", DBS)
def test_schema_files_applied_exactly_once(get_host, name):
    host = get_host(name)
    ledger = sql(host, "SELECT filename FROM oc_pizza.schema_migrations ORDER BY filename")
    assert ledger.split() == ["001_create_audit_log.sql", "002_seed_audit_log.sql"]
    # 002 inserts one row: the idempotence converge did not apply it again.
    assert sql(host, "SELECT COUNT(*) FROM oc_pizza.audit_log") == "1"
    assert sql(host, "SELECT action FROM oc_pizza.audit_log") == "créé — pizza 🍕"


def test_tampered_and_failing_schema_files_stop_the_run(get_host):
    db = get_host(DBS[0])
    before = sql(db, "SELECT filename, sha256 FROM oc_pizza.schema_migrations")
    forge_commit(get_host, "echo '-- edited later' >> 001_create_audit_log.sql")
    try:
        res = converge()
        assert res.returncode != 0
        assert "changed since they were applied: 001_create_audit_log.sql" in res.stdout
    finally:
        forge_commit(get_host, "git checkout HEAD~1 -- 001_create_audit_log.sql")

    forge_commit(get_host, "printf 'CREATE TABLE broken (id INT;\\n' > 003_broken.sql && git add 003_broken.sql")
    try:
        res = converge()
        assert res.returncode != 0
        assert "003_broken.sql failed and was not recorded" in res.stdout
        assert "error in your SQL syntax" in res.stdout
        assert "003_broken.sql" not in sql(db, "SELECT filename FROM oc_pizza.schema_migrations")
    finally:
        forge_commit(get_host, "git rm -q 003_broken.sql")
    assert converge().returncode == 0
    assert sql(db, "SELECT filename, sha256 FROM oc_pizza.schema_migrations") == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-e", "vault_mysql_app_password="], "Set vault_mysql_app_password"),
        (["-e", "mysql_bind_address=10.0.0.300"], "mysql_bind_address must be an IPv4/IPv6 address"),
        (["-e", "mysql_bind_address='not an ip!'"], "mysql_bind_address must be an IPv4/IPv6 address"),
    ],
)
def test_bad_inputs_stop_before_any_change(get_host, extra, message):
    db = get_host(DBS[0])
    checksum = db.check_output(f"sha256sum {CNF}")
    res = converge(*extra)
    assert res.returncode != 0
    assert message in res.stdout
    assert "changed=0" in res.stdout.split("PLAY RECAP")[-1]
    assert db.check_output(f"sha256sum {CNF}") == checksum
