"""Backups and restores, end to end, with the operator's own commands.

The playbooks run against the scenario's inventory exactly as an operator
runs them against the lab; the checks read the database through its socket
on the database host. Tests run in file order: each leaves the database in
the state the next one expects.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DB = "ocpizza-mol-backup-db"
APP = "ocpizza-mol-backup-app"
TOOL = "/usr/local/sbin/ocpizza-backup"
BACKUPS = "/var/backups/ocpizza"
CHECKIN_LOG = "/var/log/checkins.log"

SEED_SQL = r"""
CREATE TABLE pizza (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(100) NOT NULL,
  descr TEXT
) ENGINE=InnoDB;
CREATE TABLE customer_order (
  id INT PRIMARY KEY AUTO_INCREMENT,
  pizza_id INT NOT NULL,
  qty INT NOT NULL,
  note VARCHAR(200),
  FOREIGN KEY (pizza_id) REFERENCES pizza (id)
) ENGINE=InnoDB;
CREATE TABLE order_audit (id INT PRIMARY KEY AUTO_INCREMENT, msg VARCHAR(200)) ENGINE=InnoDB;
CREATE TABLE attachment (id INT PRIMARY KEY, data LONGBLOB, digest CHAR(64)) ENGINE=InnoDB;
CREATE TABLE empty_table (id INT PRIMARY KEY) ENGINE=InnoDB;
CREATE TRIGGER order_ai AFTER INSERT ON customer_order FOR EACH ROW
  INSERT INTO order_audit (msg) VALUES (CONCAT('order ', NEW.id, ' x', NEW.qty));
CREATE VIEW order_summary AS
  SELECT o.id, p.name, o.qty FROM customer_order o JOIN pizza p ON p.id = o.pizza_id;
DELIMITER //
CREATE PROCEDURE place_order(IN p INT, IN q INT)
BEGIN
  INSERT INTO customer_order (pizza_id, qty) VALUES (p, q);
END//
CREATE FUNCTION pizza_total() RETURNS INT READS SQL DATA
BEGIN
  RETURN (SELECT COUNT(*) FROM pizza);
END//
DELIMITER ;
CREATE EVENT nightly_cleanup ON SCHEDULE EVERY 1 DAY DISABLE
  DO DELETE FROM order_audit WHERE id < 0;
INSERT INTO pizza (name, descr) VALUES
  ('Margherita', 'tomate, mozzarella, basilic'),
  ('Quatre ''fromages''', 'a),(b\nsecond line\\ and a tab\there'),
  ('Régina 🍕', NULL),
  ('INSERT INTO `pizza` VALUES (9,''x'');', '-- Dump completed');
CALL place_order(1, 2);
CALL place_order(2, 1);
CALL place_order(3, 5);
INSERT INTO attachment (id, data) VALUES
  (1, UNHEX(CONCAT('000102030405060708090A0B0C0D0E0F', REPEAT('FF00275C0A0D1A22', 64)))),
  (2, ''),
  (3, NULL),
  (4, RANDOM_BYTES(1024));
UPDATE attachment SET digest = SHA2(data, 256) WHERE data IS NOT NULL;
"""

CHANGE_SQL = r"""
DELETE FROM customer_order WHERE id = 2;
UPDATE pizza SET name = 'changed', descr = 'changed' WHERE id IN (1, 3);
INSERT INTO empty_table VALUES (1), (2);
DELETE FROM attachment WHERE id = 4;
UPDATE attachment SET data = UNHEX('DEADBEEF') WHERE id = 1;
DROP VIEW order_summary;
DROP PROCEDURE place_order;
"""


# --------------------------------------------------------------------------
# helpers


def podman(*args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
    return proc.stdout


def on_db(command: str, check: bool = True) -> str:
    return podman("exec", DB, "bash", "-c", command, check=check)


def sql(query: str, database: str = "oc_pizza") -> str:
    return podman("exec", "-i", DB, "mysql", "--default-character-set=utf8mb4", "--batch",
                  "--skip-column-names", database, stdin=query).strip()


def base_tables() -> list[str]:
    """The base tables of oc_pizza, by name."""
    return sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
               "'oc_pizza' AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1").split()


def checksums() -> dict[str, str]:
    """CHECKSUM TABLE of every base table of oc_pizza, and the object names."""
    tables = base_tables()
    result = {}
    for line in sql("CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in tables)).splitlines():
        name, value = line.split("\t")
        result[name] = value
    result["objects"] = sql(
        "SELECT GROUP_CONCAT(n ORDER BY n) FROM ("
        "SELECT CONCAT('view ', TABLE_NAME) n FROM information_schema.VIEWS WHERE TABLE_SCHEMA='oc_pizza' "
        "UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA='oc_pizza' UNION ALL SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) "
        "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='oc_pizza' "
        "UNION ALL SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS "
        "WHERE EVENT_SCHEMA='oc_pizza') x")
    return result


def databases() -> set[str]:
    return set(sql("SHOW DATABASES").split())


def backup_ids() -> list[str]:
    """The backups' ids (the binary-log archive, binlog/, is not one)."""
    return sorted(i for i in on_db(f"ls {BACKUPS}").split() if i != "binlog")


def gunicorn_pid() -> str:
    return podman("exec", APP, "supervisorctl", "pid", "gunicorn").strip()


def playbook(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="0",
               # As the lab's ssh connection (ansible.cfg): one exec per task
               # over podman too, instead of three.
               ANSIBLE_PIPELINING="True")
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), f"playbooks/{name}", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    print(proc.stdout[-6000:], proc.stderr[-2000:])
    return proc


def manifest(backup_id: str, directory: str = BACKUPS) -> dict:
    return json.loads(on_db(f"cat {directory}/{backup_id}/{backup_id}.manifest.json"))


@pytest.fixture(scope="module")
def state() -> dict:
    """What the tests learn and hand on (ids, checksums)."""
    return {}


@pytest.fixture(scope="module")
def fetch_dir() -> Path:
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "fetched"


# --------------------------------------------------------------------------
# the role


def test_timer_installed_and_enabled(get_host):
    host = get_host(DB)
    assert host.run("systemctl is-enabled ocpizza-backup.timer").stdout.strip() == "enabled"
    assert host.run("systemctl is-active ocpizza-backup.timer").stdout.strip() == "active"
    timer = host.run("systemctl show ocpizza-backup.timer -p TimersCalendar -p Persistent").stdout
    assert "02:30:00" in timer and "Persistent=yes" in timer
    unit = host.run("systemctl show ocpizza-backup.service -p Type -p ExecStopPost").stdout
    assert "Type=oneshot" in unit and "checkin" in unit
    assert host.file(BACKUPS).mode == 0o700
    assert host.file("/etc/ocpizza-backup.conf").mode == 0o600
    # The binary-log archive runs every five minutes.
    assert host.run("systemctl is-active ocpizza-binlog-archive.timer").stdout.strip() == "active"
    timer = host.run("systemctl show ocpizza-binlog-archive.timer -p TimersCalendar").stdout
    assert "*-*-* *:00/5:00" in timer, timer
    # Issue 15, finding 12: the backup and binary-log archive units sandboxed
    # (the runs below, and the point-in-time restores that archive first,
    # prove they still work under it): the backup without any capability, the
    # archive with only the right to read the server's binary logs.
    for unit, caps in (
        ("ocpizza-backup", ""),
        ("ocpizza-binlog-archive", "cap_dac_read_search"),
    ):
        props = dict(
            line.split("=", 1)
            for line in host.run(
                f"systemctl show {unit}.service -p ProtectSystem -p ReadWritePaths -p NoNewPrivileges"
                " -p CapabilityBoundingSet -p RestrictAddressFamilies -p SystemCallFilter"
            ).stdout.splitlines()
            if "=" in line
        )
        assert props["ProtectSystem"] == "strict", (unit, props)
        assert props["ReadWritePaths"] == BACKUPS, (unit, props)
        assert props["NoNewPrivileges"] == "yes", (unit, props)
        assert props["CapabilityBoundingSet"] == caps, (unit, props)
        assert "AF_INET" in props["RestrictAddressFamilies"], (unit, props)
        assert props["SystemCallFilter"], (unit, props)


# --------------------------------------------------------------------------
# round trip


def test_round_trip_restores_every_table_identically(state, fetch_dir):
    sql(SEED_SQL)
    before = checksums()
    assert "view order_summary" in before["objects"] and "trigger order_ai" in before["objects"]

    run = playbook("backup.yml", "-e", "fetch=true", "-e", f"backup_fetch_dir={fetch_dir}")
    assert run.returncode == 0
    backup_id = [i for i in backup_ids() if i.startswith("oc_pizza-")][-1]
    m = manifest(backup_id)
    assert m["tables"] == {"attachment": 4, "customer_order": 3, "empty_table": 0,
                           "order_audit": 3, "pizza": 4}
    assert m["binlog"]["file"].startswith("mysql-bin") and m["binlog"]["position"] > 0
    assert m["server"]["version"] and m["kind"] == "manual"
    assert m["views"] == ["order_summary"] and m["triggers"] == ["order_ai"]
    assert m["routines"] == ["FUNCTION pizza_total", "PROCEDURE place_order"]
    assert m["events"] == ["nightly_cleanup"]
    fetched = fetch_dir / DB / backup_id
    assert (fetched / f"{backup_id}.sql.gz").exists() and (fetched / f"{backup_id}.manifest.json").exists()

    sql(CHANGE_SQL)
    assert checksums() != before
    pid = gunicorn_pid()
    ids_before = backup_ids()

    run = playbook("restore.yml", "-e", f"backup={backup_id}")
    assert run.returncode == 0
    assert checksums() == before
    # The trigger, view, procedure and function work in the restored database.
    sql("CALL place_order(4, 7);")
    assert sql("SELECT msg FROM order_audit ORDER BY id DESC LIMIT 1") == "order 4 x7"
    assert sql("SELECT qty FROM order_summary WHERE id = 4") == "7"
    assert sql("SELECT pizza_total()") == "4"
    assert sql("SELECT COUNT(*) FROM attachment WHERE digest = SHA2(data, 256)") == "3"
    # gunicorn was stopped for the switch and started again.
    new_pid = gunicorn_pid()
    assert new_pid != pid and new_pid.isdigit()
    # The safety backup holds the database as it was, and the report says how to undo.
    safety = [i for i in backup_ids() if i not in ids_before]
    assert len(safety) == 1 and manifest(safety[0])["kind"] == "pre-restore"
    assert manifest(safety[0])["tables"]["empty_table"] == 2
    assert f"restore.yml -e backup={safety[0]}" in " ".join(run.stdout.split())
    previous = [d for d in databases() if d.startswith("oc_pizza_pre_restore_")]
    assert len(previous) == 1
    assert sql("SELECT COUNT(*) FROM empty_table", previous[0]) == "2"
    assert not [d for d in databases() if d.startswith("oc_pizza_restore_")]
    sql("DELETE FROM order_audit WHERE id > 3; DELETE FROM customer_order WHERE id > 3;")
    assert checksums() == before
    for db in previous:
        sql(f"DROP DATABASE `{db}`")
    state.update(backup_id=backup_id, checksums=before, fetched=fetched)



def test_the_fetched_copy_is_private_to_the_operator(state, fetch_dir):
    """Issue 15, finding 10: full dumps of customer data on the control node are
    0600 in 0700 directories, whatever the operator's umask."""
    fetched = state["fetched"]
    for directory in (fetch_dir, fetched.parent, fetched):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    files = sorted(fetched.iterdir())
    assert len(files) == 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_controller_copy_uploads_only_the_backup_and_its_manifest(state, fetch_dir):
    """Issue 15, finding 11: restore.yml -e backup=<controller directory> uploads the
    backup and its manifest, never the rest of the directory."""
    backup_id = state["backup_id"]
    copy = fetch_dir / "operator" / backup_id
    shutil.copytree(state["fetched"], copy)
    # What else an operator's directory may hold: not for the database host.
    (copy / "older.manifest.json").write_text("{}")
    (copy / "notes.txt").write_text("ticket 4312\n")
    run = playbook("restore.yml", "-e", f"backup={copy}", "-e", "keep_previous=false")
    assert run.returncode == 0
    assert checksums() == state["checksums"]
    output = " ".join(run.stdout.split())
    assert "notes.txt" not in output and "older.manifest.json" not in output
    assert not on_db(f"ls -A {BACKUPS} | grep -e incoming -e verified", check=False).strip()
    # A directory that names no single backup is refused before anything is uploaded.
    other = fetch_dir / "operator" / "not-a-backup"
    other.mkdir()
    (other / "a.manifest.json").write_text("{}")
    (other / "b.manifest.json").write_text("{}")
    run = playbook("restore.yml", "-e", f"backup={other}")
    assert run.returncode != 0
    assert "names no single backup" in " ".join(run.stdout.split())
    shutil.rmtree(fetch_dir / "operator")


def test_backups_list_shows_each_backup_verified(state):
    run = playbook("backups-list.yml")
    assert run.returncode == 0
    assert state["backup_id"] in run.stdout
    line = next(li for li in run.stdout.splitlines() if state["backup_id"] in li)
    assert "verified" in line and "manual" in line
    assert "Binary-log archive:" in run.stdout


# --------------------------------------------------------------------------
# refusals: the live database is left exactly as it was


def _make_bad_copy(source: str, name: str, how: str) -> None:
    """Copy backup `source` to id `name` and damage it."""
    script = textwrap.dedent(f"""
        import hashlib, json, os, shutil
        src = "{BACKUPS}/{source}"; dst = "{BACKUPS}/{name}"
        shutil.rmtree(dst, ignore_errors=True); os.mkdir(dst, 0o700)
        data = open(f"{{src}}/{source}.sql.gz", "rb").read()
        m = json.load(open(f"{{src}}/{source}.manifest.json"))
        m["id"] = "{name}"; m["file"] = "{name}.sql.gz"
        how = "{how}"
        if how == "corrupt":
            b = bytearray(data); mid = len(b) // 2
            for i in range(mid, mid + 8): b[i] ^= 0xA5
            data = bytes(b)
        elif how.startswith("truncated"):
            data = data[: len(data) * 2 // 3]
            if how == "truncated-resealed":
                m["sha256"] = hashlib.sha256(data).hexdigest(); m["compressed_bytes"] = len(data)
        elif how == "mismatched":
            m["id"] = "{source}"; m["file"] = "{source}.sql.gz"
        open(f"{{dst}}/{name}.sql.gz", "wb").write(data)
        json.dump(m, open(f"{{dst}}/{name}.manifest.json", "w"))
    """)
    podman("exec", "-i", DB, "python3", "-", stdin=script)


REFUSALS = {
    # how the backup is damaged: (how restore.yml is given it, what the message must say)
    "corrupt": ("id", ["sha256 is", "corrupt or altered", "compressed data is corrupt"]),
    "truncated": ("controller path", ["truncated", "size is"]),
    "mismatched": ("id", ["manifest does not match"]),
}


@pytest.mark.parametrize("how", sorted(REFUSALS))
def test_bad_backup_is_refused_and_nothing_changes(state, fetch_dir, how):
    name = f"oc_pizza-{how}"
    via, expected = REFUSALS[how]
    _make_bad_copy(state["backup_id"], name, how)
    ref = name
    if via == "controller path":  # as if fetched earlier: only the controller has it
        ref = str(fetch_dir / "bad" / name)
        Path(ref).parent.mkdir(parents=True, exist_ok=True)
        podman("cp", f"{DB}:{BACKUPS}/{name}", ref)
        on_db(f"rm -rf {BACKUPS}/{name}")
    before, dbs, ids, pid = checksums(), databases(), backup_ids(), gunicorn_pid()
    run = playbook("restore.yml", "-e", f"backup={ref}")
    assert run.returncode != 0
    output = " ".join(run.stdout.split())
    assert "REFUSED" in output and f"{name}.sql.gz" in output and "nothing was changed" in output
    for text in expected:
        assert text in output, text
    assert checksums() == before            # live data untouched
    assert databases() == dbs               # no scratch database
    assert backup_ids() == ids              # no safety backup was taken
    assert gunicorn_pid() == pid            # gunicorn never stopped
    assert not on_db(f"ls -A {BACKUPS} | grep incoming", check=False).strip()
    on_db(f"rm -rf {BACKUPS}/{name}")


def test_a_resealed_truncated_backup_is_caught_by_decompression(state, get_host):
    """Truncated, and its manifest rewritten to the new size and sha256."""
    _make_bad_copy(state["backup_id"], "oc_pizza-resealed", "truncated-resealed")
    check = get_host(DB).run(f"{TOOL} verify oc_pizza-resealed")
    assert check.rc == 1
    assert "compressed data ends early (the file is truncated)" in check.stdout
    assert "sha256" not in check.stdout
    on_db(f"rm -rf {BACKUPS}/oc_pizza-resealed")


def test_unknown_backup_is_refused_with_the_available_ids(state):
    before = checksums()
    run = playbook("restore.yml", "-e", "backup=oc_pizza-19990101T000000Z")
    assert run.returncode != 0
    output = " ".join(run.stdout.split())
    assert "Unknown backup 'oc_pizza-19990101T000000Z'" in output
    assert state["backup_id"] in output
    assert checksums() == before


def test_missing_backup_argument_is_refused():
    run = playbook("restore.yml")
    assert run.returncode != 0
    assert "Missing -e backup=<id|path>" in run.stdout


# --------------------------------------------------------------------------
# point-in-time restores: the binary-log archive replayed up to a point


def _archive_now(get_host) -> float:
    """Run the archive's unit as its timer does; its wall time."""
    start = time.monotonic()
    result = get_host(DB).run("systemctl start ocpizza-binlog-archive.service")
    assert result.rc == 0, result.stderr
    return time.monotonic() - start


def _archived() -> list[str]:
    return sorted(f for f in on_db(f"ls {BACKUPS}/binlog").split() if not f.endswith(".json"))


def test_point_in_time_refusals_change_nothing(state, get_host):
    """Rows at t1 and t2, a table dropped at t3, each step archived; then every
    refusal leaves the live rows, the backups and gunicorn as they were."""
    on_db(f"{TOOL} backup --kind manual --json")
    sql("CREATE TABLE pitr_note (id INT PRIMARY KEY, said VARCHAR(20)) ENGINE=InnoDB;"
        "INSERT INTO pitr_note VALUES (1, 't1');")
    _archive_now(get_host)
    sql("INSERT INTO pitr_note VALUES (2, 't2'); INSERT INTO pizza (name) VALUES ('t2 pizza');")
    seconds = _archive_now(get_host)
    print(f"binary-log archive run: {seconds:.1f} s (RPO: the timer's 5 minutes + this)")
    state["pitr_before_drop"] = checksums()
    time.sleep(1.1)
    t3 = sql("SELECT UTC_TIMESTAMP()")
    sql("DROP TABLE pitr_note; INSERT INTO pizza (name) VALUES ('after t3');")
    _archive_now(get_host)
    state["t3"] = t3
    before, dbs, ids, pid = checksums(), databases(), backup_ids(), gunicorn_pid()
    archived = _archived()
    assert len(archived) >= 3
    # The archive's newest position is in the list (backups-list.yml shows it).
    assert f"newest position {archived[-1]}:" in on_db(f"{TOOL} list")
    # A hole in the chain: an archived binary log the restore needs goes missing.
    hole = archived[-2]
    on_db(f"mkdir -p /root/hole && mv {BACKUPS}/binlog/{hole} {BACKUPS}/binlog/{hole}.json /root/hole/")
    future = sql("SELECT UTC_TIMESTAMP() + INTERVAL 1 DAY")
    cases = {
        "malformed": (["-e", "until=2026-13-01T00:00:00"], "until must be a UTC time"),
        # What Ansible makes of an unquoted -e until=2026-11-29 14:03:00.
        "unquoted": (["-e", "until=2026-11-29 14:03:00"], "quote it for Ansible"),
        "future": (["-e", f"until={future.replace(' ', 'T')}"], "that is not in the future"),
        "both": (["-e", "until=2026-11-29T14:03:00", "-e", "backup=oc_pizza-x"], "more than one"),
        "bad position": (["-e", "until_position=mysql-bin"], "until_position <binlog file>:<position>"),
        "before the oldest backup": (["-e", "until=2000-01-01T00:00:00"], "before the oldest backup"),
        # The ISO form needs no quoting on -e (a space does: until='2026-11-29 14:03:00').
        "gap": (["-e", f"until={t3.replace(' ', 'T')}"], "gap in the binary-log chain"),
    }
    try:
        for case, (extra, expected) in cases.items():
            run = playbook("restore.yml", *extra)
            output = " ".join(run.stdout.split())
            assert run.returncode != 0, case
            assert expected in output and "othing was changed" in output, case
            if case == "gap":
                assert f"{hole} missing" in output
            assert checksums() == before, case
            assert databases() == dbs and backup_ids() == ids and gunicorn_pid() == pid, case
    finally:
        on_db(f"mv /root/hole/* {BACKUPS}/binlog/")


def test_point_in_time_restore_brings_back_t1_t2_and_the_dropped_table(state):
    run = playbook(
        "restore.yml", "-e", json.dumps({"until": state["t3"]}), "-e", "keep_previous=false"
    )
    assert run.returncode == 0
    output = " ".join(run.stdout.split())
    assert "replayed up to" in output
    assert checksums() == state["pitr_before_drop"]
    assert sql("SELECT GROUP_CONCAT(said ORDER BY id) FROM pitr_note") == "t1,t2"
    assert sql("SELECT COUNT(*) FROM pizza WHERE name = 'after t3'") == "0"
    sql("DROP TABLE pitr_note; DELETE FROM pizza WHERE name = 't2 pizza';")


# --------------------------------------------------------------------------
# restore drills


def _live_rows() -> int:
    """Exact rows of every base table of oc_pizza, summed."""
    counts = " + ".join(f"(SELECT COUNT(*) FROM `{t}`)" for t in base_tables())
    return int(sql(f"SELECT {counts}"))


def _drill_report() -> dict:
    return json.loads(on_db(f"cat {BACKUPS}/.drill-last.json"))


def test_the_restore_drill_restores_the_newest_backup_and_binary_logs_then_drops_them(get_host):
    """drill.yml: the newest backup, then the binary logs archived after it,
    restored into a scratch database, checked and dropped. A row written after
    the backup is in the restored copy (the binary logs were replayed); the
    live rows, the databases, the backups and gunicorn are as they were."""
    on_db(f"{TOOL} backup --kind manual --json")
    sql("INSERT INTO pizza (name) VALUES ('drill: after the backup');")
    try:
        before, dbs, ids, pid = checksums(), databases(), backup_ids(), gunicorn_pid()
        run = playbook("drill.yml")
        assert run.returncode == 0
        output = " ".join(run.stdout.split())
        assert "restore drill OK" in output and "recovery time" in output
        report = _drill_report()
        assert report["ok"] and report["backup"] == ids[-1]
        assert report["binlogs"] and report["until"]
        # Backup + binary logs = every live row, the one written after the backup too.
        assert report["rows"] == _live_rows()
        assert 0 < report["recovery_seconds"] < 300
        assert 0 <= report["data_age_seconds"] < 600
        print(f"restore drill: recovery {report['recovery_seconds']} s, newest restored data "
              f"{report['data_age_seconds']} s old ({report['rows']} rows)")
        assert checksums() == before and databases() == dbs
        assert backup_ids() == ids and gunicorn_pid() == pid
    finally:
        sql("DELETE FROM pizza WHERE name = 'drill: after the backup';")


def test_a_failed_drill_checks_in_to_fail_and_touches_nothing(get_host):
    """The monthly unit, with the newest backup damaged: the unit fails, the
    failure checks in (<url>/fail), the report names the problem, no scratch
    database is left; a successful run of the unit sends no check-in."""
    host = get_host(DB)
    timer = host.file("/etc/systemd/system/ocpizza-backup-drill.timer").content_string
    assert "OnCalendar=*-*-01 04:30:00" in timer
    assert host.service("ocpizza-backup-drill.timer").is_enabled
    newest = backup_ids()[-1]
    data = f"{BACKUPS}/{newest}/{newest}.sql.gz"
    sent, dbs, before = len(_checkins()), databases(), checksums()
    on_db(f"cp -p {data} /root/drill-good.sql.gz && printf 'x' | dd of={data} bs=1 seek=100 "
          "conv=notrunc status=none")
    try:
        assert host.run("systemctl start ocpizza-backup-drill.service").rc != 0
        assert host.run("systemctl is-failed ocpizza-backup-drill.service").stdout.strip() == "failed"
        time.sleep(1)
        assert _checkins()[sent:] == ["/ping/ocpizza-backup/fail"]
        report = _drill_report()
        assert not report["ok"] and "does not match its manifest" in report["problems"][0]
        assert databases() == dbs and checksums() == before
    finally:
        on_db(f"cp -p /root/drill-good.sql.gz {data}")
        host.run("systemctl reset-failed ocpizza-backup-drill.service")
    sent = len(_checkins())
    result = host.run("systemctl start ocpizza-backup-drill.service")
    assert result.rc == 0, result.stderr
    assert _drill_report()["ok"] and databases() == dbs
    time.sleep(1)
    assert _checkins()[sent:] == []


# --------------------------------------------------------------------------
# retention


RETENTION_DIR = "/var/backups/ocpizza-retention"


def test_retention_prunes_exactly_what_it_should(state):
    """Synthetic backups: one a day at 01:30Z from 2026-02-20 to 2026-03-20, a
    manual one on 2026-03-20 15:00Z, a corrupt newest one (2026-03-21) and a
    corrupt old one (2026-02-01). With 7 daily and 4 weekly:
    daily keeps 03-20 15:00 and 03-19 .. 03-14; weekly (ISO weeks 12, 11, 10,
    9) adds 03-08 and 03-01 (the Sundays closing weeks 10 and 9); the corrupt
    newest one is not counted but kept (newer than the oldest kept backup); the
    old corrupt one and everything else goes."""
    import datetime as dt

    stamps = [dt.datetime(2026, 2, 20, 1, 30) + dt.timedelta(days=n) for n in range(29)]
    stamps.append(dt.datetime(2026, 3, 20, 15, 0))
    good = {f"oc_pizza-{s:%Y%m%dT%H%M%SZ}": s for s in stamps}
    corrupt = {f"oc_pizza-{s:%Y%m%dT%H%M%SZ}": s
               for s in (dt.datetime(2026, 3, 21, 1, 30), dt.datetime(2026, 2, 1, 1, 30))}
    script = textwrap.dedent(f"""
        import json, os, shutil
        src_id = "{state['backup_id']}"; src = "{BACKUPS}/" + src_id
        root = "{RETENTION_DIR}"; shutil.rmtree(root, ignore_errors=True); os.makedirs(root)
        data = open(f"{{src}}/{{src_id}}.sql.gz", "rb").read()
        m = json.load(open(f"{{src}}/{{src_id}}.manifest.json"))
        for bid, when, bad in {[(k, v.strftime('%Y-%m-%dT%H:%M:%SZ'), False) for k, v in good.items()]
                               + [(k, v.strftime('%Y-%m-%dT%H:%M:%SZ'), True) for k, v in corrupt.items()]}:
            os.mkdir(f"{{root}}/{{bid}}")
            m.update(id=bid, file=bid + ".sql.gz", started_at=when, finished_at=when)
            json.dump(m, open(f"{{root}}/{{bid}}/{{bid}}.manifest.json", "w"))
            open(f"{{root}}/{{bid}}/{{bid}}.sql.gz", "wb").write(data[:-1] + b"X" if bad else data)
    """)
    podman("exec", "-i", DB, "python3", "-", stdin=script)
    out = on_db(f"{TOOL} --dir {RETENTION_DIR} prune --keep-daily 7 --keep-weekly 4 --json")
    result = json.loads(out)
    remaining = set(on_db(f"ls {RETENTION_DIR}").split())
    expected = {f"oc_pizza-2026{d}T013000Z" for d in
                ("0319", "0318", "0317", "0316", "0315", "0314", "0308", "0301")}
    expected |= {"oc_pizza-20260320T150000Z", "oc_pizza-20260321T013000Z"}
    assert remaining == expected
    assert set(result["pruned"]) == (set(good) | set(corrupt)) - expected
    assert result["kept"]["oc_pizza-20260321T013000Z"] == ["does not verify: kept for inspection"]
    on_db(f"rm -rf {RETENTION_DIR}")


# --------------------------------------------------------------------------
# the schedule: a triggered run, a failing run


def _checkins() -> list[str]:
    out = podman("exec", APP, "cat", CHECKIN_LOG, check=False)
    return [line.split(" ", 1)[1] for line in out.splitlines() if " " in line]


def test_triggered_run_produces_a_valid_backup_and_checks_in(get_host):
    host = get_host(DB)
    ids = backup_ids()
    sent = len(_checkins())
    result = host.run("systemctl start ocpizza-backup.service")
    assert result.rc == 0, result.stderr
    new = [i for i in backup_ids() if i not in ids]
    assert len(new) == 1
    assert manifest(new[0])["kind"] == "scheduled"
    check = host.run(f"{TOOL} verify --json {new[0]}")
    assert check.rc == 0 and json.loads(check.stdout)["ok"] and json.loads(check.stdout)["full"]
    # Retention ran after it: the new backup is the one kept for today (UTC).
    today = new[0].split("-")[1][:8]
    assert [i for i in backup_ids() if i.split("-")[1].startswith(today)] == new
    time.sleep(1)
    assert _checkins()[sent:] == ["/ping/ocpizza-backup"]


def test_failed_run_is_visible(get_host):
    host = get_host(DB)
    ids = backup_ids()
    sent = len(_checkins())
    # The binary-log archive would fail too, and check in, while the server is down.
    host.run("systemctl stop ocpizza-binlog-archive.timer")
    host.run("systemctl stop mariadb")
    try:
        since = host.run("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
        result = host.run("systemctl start ocpizza-backup.service")
        assert result.rc != 0
        assert host.run("systemctl is-failed ocpizza-backup.service").stdout.strip() == "failed"
        errors = host.run(f"journalctl -u ocpizza-backup.service -p err --since '{since}' "
                          "--no-pager -o cat").stdout
        assert "scheduled backup FAILED" in errors
        time.sleep(1)
        assert _checkins()[sent:] == ["/ping/ocpizza-backup/fail"]
        assert backup_ids() == ids
        assert not host.run(f"ls -A {BACKUPS} | grep partial").stdout.strip()
    finally:
        host.run("systemctl start mariadb")
        host.run("systemctl reset-failed ocpizza-backup.service")
        host.run("systemctl start ocpizza-binlog-archive.timer")


# --------------------------------------------------------------------------
# off-site copies, encrypted, in S3-compatible storage: moto's S3 server runs
# on the control node, on the scenario network's gateway address, for the
# tests below only (stopped at the end of the module, and by `timeout` at the
# latest). Its program: $OCPIZZA_MOTO_SERVER, default the project's .venv.

OFFSITE_BUCKET = "ocpizza-mol-backup"
OFFSITE_PREFIX = f"backups/{DB}"
MOTO_LIFETIME = "1200"


def _free_port(address: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def offsite(fetch_dir):
    """The S3 server, a bucket, two age identities (generated on the app host,
    never on the database host) and the inventory settings, as a vars file."""
    import urllib.request

    program = os.environ.get("OCPIZZA_MOTO_SERVER", str(REPO / ".venv" / "bin" / "moto_server"))
    if not Path(program).exists():
        pytest.fail(f"{program} is missing: pip install -r requirements.txt (moto) or set OCPIZZA_MOTO_SERVER")
    network = json.loads(podman("network", "inspect", "ocpizza-mol-backup"))[0]
    gateway = network["subnets"][0]["gateway"]
    port = _free_port(gateway)
    workdir = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "offsite"
    workdir.mkdir(mode=0o700, exist_ok=True)
    log = (workdir / "moto.log").open("w")
    server = subprocess.Popen(["timeout", MOTO_LIFETIME, program, "-H", gateway, "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://{gateway}:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(urllib.request.Request(
                    f"{endpoint}/{OFFSITE_BUCKET}", method="PUT",
                    data=b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                         b"<LocationConstraint>ams3</LocationConstraint></CreateBucketConfiguration>"),
                    timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(f"the S3 server did not answer on {endpoint}")
        keys = {}
        for name in ("right", "wrong"):
            secret = podman("exec", APP, "age-keygen")
            path = workdir / f"{name}.agekey"
            path.write_text(secret)
            path.chmod(0o600)
            public = podman("exec", "-i", APP, "age-keygen", "-y", stdin=secret).strip()
            keys[name] = (path, public)
        settings = {
            "mysql_backup_offsite_endpoint": endpoint,
            "mysql_backup_offsite_bucket": OFFSITE_BUCKET,
            "mysql_backup_offsite_region": "ams3",
            "mysql_backup_offsite_age_recipients": [keys["right"][1]],
            "vault_mysql_backup_offsite_access_key": "mol-access-key",
            "vault_mysql_backup_offsite_secret_key": "mol-secret-key-0123456789",
        }
        vars_file = workdir / "offsite.yml"
        vars_file.write_text(json.dumps(settings))
        yield {"endpoint": endpoint, "vars": f"@{vars_file}", "right": keys["right"][0],
               "wrong": keys["wrong"][0], "server": server, "settings": settings}
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def s3_on_db(offsite, code: str) -> str:
    """Run boto3 code on the database host (Debian's python3-boto3) with `s3` a client."""
    s = offsite["settings"]
    head = textwrap.dedent(f"""
        import boto3, json, sys
        from botocore.config import Config
        s3 = boto3.client("s3", endpoint_url="{s['mysql_backup_offsite_endpoint']}", region_name="ams3",
                          aws_access_key_id="x", aws_secret_access_key="y",
                          config=Config(s3={{"addressing_style": "path"}}))
        B = "{OFFSITE_BUCKET}"
    """)
    return podman("exec", "-i", DB, "python3", "-", stdin=head + textwrap.dedent(code))


def test_a_backup_lands_off_site_encrypted_and_is_listed(state, offsite):
    state["offsite_checksums"] = checksums()
    run = playbook("backup.yml", "-e", offsite["vars"])
    assert run.returncode == 0
    backup_id = sorted(i for i in backup_ids() if i.startswith("oc_pizza-2"))[-1]
    assert "size and ETag checked" in " ".join(run.stdout.split())
    objects = json.loads(s3_on_db(offsite, f"""
        out = {{}}
        for o in s3.list_objects_v2(Bucket=B, Prefix="{OFFSITE_PREFIX}/{backup_id}/")["Contents"]:
            out[o["Key"].rsplit("/", 1)[1]] = s3.get_object(Bucket=B, Key=o["Key"])["Body"].read(64).hex()
        print(json.dumps(out))
    """))
    assert sorted(objects) == [f"{backup_id}.manifest.json.age", f"{backup_id}.offsite.json",
                               f"{backup_id}.sql.gz.age"]
    for name in (f"{backup_id}.sql.gz.age", f"{backup_id}.manifest.json.age"):
        head = bytes.fromhex(objects[name])
        # age's header, not gzip (1f8b) nor SQL nor JSON
        assert head.startswith(b"age-encryption.org/v1\n-> X25519 "), head
    # The archived binary logs follow, encrypted too, each with its clear index.
    on_db("systemctl start ocpizza-binlog-archive.service")
    logs = json.loads(s3_on_db(offsite, f"""
        out = {{}}
        for o in s3.list_objects_v2(Bucket=B, Prefix="{OFFSITE_PREFIX}/binlog/")["Contents"]:
            out[o["Key"].rsplit("/", 1)[1]] = s3.get_object(Bucket=B, Key=o["Key"])["Body"].read(64).hex()
        print(json.dumps(out))
    """))
    archived = _archived()
    assert {f"{archived[-1]}.age", f"{archived[-1]}.json"} <= set(logs)
    # Each encrypted binary log has its index (uploaded last).
    assert {k[:-4] for k in logs if k.endswith(".age")} == {k[:-5] for k in logs if k.endswith(".json")}
    assert bytes.fromhex(logs[f"{archived[-1]}.age"]).startswith(b"age-encryption.org/v1\n")
    listing = playbook("backups-list.yml", "-e", offsite["vars"])
    assert listing.returncode == 0
    line = next(li for li in listing.stdout.splitlines() if backup_id in li and "encrypted" in li)
    assert "complete (encrypted)" in line
    state["offsite_id"] = backup_id


def _offsite_restore(offsite, state, *extra: str) -> subprocess.CompletedProcess[str]:
    return playbook("restore.yml", "-e", offsite["vars"], "-e", f"backup={state['offsite_id']}",
                    "-e", "source=offsite", *extra)


def test_restore_from_off_site_with_the_right_identity_when_local_copies_are_gone(state, offsite):
    sql(CHANGE_SQL)
    assert checksums() != state["offsite_checksums"]
    on_db(f"rm -rf {BACKUPS}/oc_pizza-*")
    run = _offsite_restore(offsite, state, "-e", f"age_identity={offsite['right']}",
                           "-e", "keep_previous=false")
    assert run.returncode == 0
    assert checksums() == state["offsite_checksums"]
    # The identity was never written on the database host, nor shown.
    secret = offsite["right"].read_text().split("AGE-SECRET-KEY-")[1].strip()[:20]
    assert secret not in run.stdout + run.stderr
    assert not on_db(f"grep -rl {secret} /run /tmp /var/tmp /root /etc {BACKUPS} 2>/dev/null",
                     check=False).strip()
    assert secret not in on_db("journalctl --no-pager -o cat")
    assert not on_db(f"ls -A {BACKUPS} | grep -e incoming -e verified -e offsite", check=False).strip()


def _truncate(offsite, state, undo: bool = False) -> None:
    key = f"{OFFSITE_PREFIX}/{state['offsite_id']}/{state['offsite_id']}.sql.gz.age"
    s3_on_db(offsite, f"""
        import os
        keep = "/root/.offsite-object"
        if {undo}:
            s3.put_object(Bucket=B, Key="{key}", Body=open(keep, "rb").read()); os.unlink(keep)
        else:
            blob = s3.get_object(Bucket=B, Key="{key}")["Body"].read()
            open(keep, "wb").write(blob)
            s3.put_object(Bucket=B, Key="{key}", Body=blob[: len(blob) * 2 // 3])
    """)


OFFSITE_REFUSALS = {
    # what is wrong: (extra vars, what the message must say)
    "wrong identity": ("wrong", "identity given cannot decrypt"),
    "truncated object": ("right", "(truncated or replaced)"),
    "missing credentials": ("right", "vault_mysql_backup_offsite_secret_key is missing or empty"),
}


@pytest.mark.parametrize("case", list(OFFSITE_REFUSALS))
def test_a_bad_off_site_restore_is_refused_and_nothing_changes(state, offsite, case):
    identity, says = OFFSITE_REFUSALS[case]
    extra = ["-e", f"age_identity={offsite[identity]}"]
    if case == "missing credentials":
        extra += ["-e", "vault_mysql_backup_offsite_secret_key="]
    if case == "truncated object":
        _truncate(offsite, state)
    before, dbs, ids, pid = checksums(), databases(), backup_ids(), gunicorn_pid()
    try:
        run = _offsite_restore(offsite, state, *extra)
    finally:
        if case == "truncated object":
            _truncate(offsite, state, undo=True)
    assert run.returncode != 0
    output = " ".join(run.stdout.split())
    assert says in output
    assert checksums() == before and databases() == dbs and backup_ids() == ids
    assert gunicorn_pid() == pid
    assert not on_db(f"ls -A {BACKUPS} | grep -e incoming -e offsite", check=False).strip()


def test_a_failed_upload_fails_the_run_and_keeps_the_local_backup(get_host, offsite):
    """The S3 server is stopped: the scheduled run takes its backup, cannot copy it,
    fails and checks in as failed; the local backup stays, and verifies."""
    # The binary-log archive would fail too, and check in (it stays off: no bucket now).
    get_host(DB).run("systemctl stop ocpizza-binlog-archive.timer")
    offsite["server"].terminate()
    offsite["server"].wait(timeout=10)
    host = get_host(DB)
    ids, sent = backup_ids(), len(_checkins())
    since = host.run("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    result = host.run("systemctl start ocpizza-backup.service")
    try:
        assert result.rc != 0
        errors = host.run(f"journalctl -u ocpizza-backup.service -p err --since '{since}' "
                          "--no-pager -o cat").stdout
        assert "off-site copy FAILED" in errors and "the local backups are kept" in errors
        new = [i for i in backup_ids() if i not in ids]
        assert len(new) == 1 and host.run(f"{TOOL} verify --quick {new[0]}").rc == 0
        time.sleep(1)
        assert _checkins()[sent:] == ["/ping/ocpizza-backup/fail"]
        assert not host.run(f"ls -A {BACKUPS} | grep offsite").stdout.strip()
    finally:
        host.run("systemctl reset-failed ocpizza-backup.service")
