"""ocpizza-backup's pure parts: reading dumps, verifying backups, finding them,
and the backup pipeline itself against fake mysql/mysqldump clients."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import textwrap
import zlib
from pathlib import Path

import pytest
from ocpizza_backup import BackupError, UnknownBackup
from ocpizza_backup.backup import backup
from ocpizza_backup.checkin import checkin_target
from ocpizza_backup.cli import format_list
from ocpizza_backup.config import Config
from ocpizza_backup.dumpscan import DumpScanner, count_rows
from ocpizza_backup.manifest import backup_files, list_ids, resolve
from ocpizza_backup.verify import gunzip_chunks, verify

# A dump as MariaDB 10.11's mysqldump writes it (one row per line), with the
# traps: strings holding "),(", quotes, backslashes, an INSERT statement and
# the completion marker; a trigger and a routine whose bodies look like data.
DUMP = (
    textwrap.dedent(r"""
    /*M!999999\- enable the sandbox mode */
    -- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
    -- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000007', MASTER_LOG_POS=4363;
    DROP TABLE IF EXISTS `pizza`;
    CREATE TABLE `pizza` (
      `id` int(11) NOT NULL AUTO_INCREMENT,
      `name` varchar(100) NOT NULL,
      PRIMARY KEY (`id`)
    ) ENGINE=InnoDB;
    LOCK TABLES `pizza` WRITE;
    INSERT INTO `pizza` VALUES
    (1,'Margherita'),
    (2,'a),(b\'),(c\\'),
    (3,'INSERT INTO `pizza` VALUES (9,\'x\');'),
    (4,'-- Dump completed');
    UNLOCK TABLES;
    CREATE TABLE `we``ird` (
      `data` longblob
    ) ENGINE=InnoDB;
    INSERT INTO `we``ird` VALUES (0x00FF28),(''),(NULL);
    INSERT INTO `we``ird` VALUES (0x29);
    CREATE TABLE `empty` (
      `id` int(11) NOT NULL
    ) ENGINE=InnoDB;
    DELIMITER ;;
    /*!50003 CREATE*/ /*!50003 TRIGGER t AFTER INSERT ON pizza FOR EACH ROW BEGIN
    INSERT INTO `empty` VALUES (1),(2);
    END */;;
    DELIMITER ;
    DELIMITER ;;
    CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()
    BEGIN
    CREATE TABLE `ghost` (id int);
    END
    ;;
    DELIMITER ;
    -- SET GLOBAL gtid_slave_pos='0-1-16';
    -- Dump completed on 2026-11-29  7:19:27
""")
    .lstrip()
    .encode()
)

TABLES = {"pizza": 4, "we`ird": 4, "empty": 0}


def scan(data: bytes, chunk: int) -> object:
    scanner = DumpScanner()
    for i in range(0, len(data), chunk):
        scanner.feed(data[i : i + chunk])
    scanner.close()
    return scanner


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_scanner_counts_rows_exactly_whatever_the_chunking(chunk):
    scanner = scan(DUMP, chunk)
    assert scanner.tables == TABLES
    assert scanner.binlog_file == "mysql-bin.000007"
    assert scanner.binlog_position == 4363
    assert scanner.gtid == "0-1-16"
    assert scanner.completed
    assert scanner.bytes == len(DUMP)


def test_scanner_reads_one_line_extended_inserts():
    dump = (
        b"CREATE TABLE `t` (\n  `a` text\n);\n"
        b"INSERT INTO `t` VALUES (1,'x),(y'),(2,NULL),(3,'\\\\');\n"
        b"INSERT INTO `t` VALUES (4,'');\n-- Dump completed on x\n"
    )
    assert scan(dump, 5).tables == {"t": 4}


def test_scanner_reads_mysql8_source_position():
    dump = b"-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=157;\n"
    scanner = scan(dump, 10)
    assert (scanner.binlog_file, scanner.binlog_position) == ("binlog.000002", 157)
    assert not scanner.completed


def test_count_rows_ignores_parentheses_in_strings():
    assert count_rows(b"(1,'(((('),(2,'\\')'),(3,0x28)") == 3


# --------------------------------------------------------------------------
# backups on disk


def make_backup(
    root: Path, backup_id: str = "oc_pizza-20261129T013000Z", dump: bytes = DUMP
) -> object:
    directory = root / backup_id
    directory.mkdir(parents=True)
    files = backup_files(directory, backup_id)
    files.data.write_bytes(gzip.compress(dump))
    data = files.data.read_bytes()
    files.manifest.write_text(
        json.dumps(
            {
                "format": 1,
                "id": backup_id,
                "kind": "manual",
                "database": "oc_pizza",
                "file": files.data.name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "compressed_bytes": len(data),
                "dump_bytes": len(dump),
                "tables": TABLES,
                "finished_at": "2026-11-29T01:30:00Z",
            }
        )
    )
    return files


def test_a_good_backup_verifies(tmp_path):
    files = make_backup(tmp_path)
    check = verify(files, full=True)
    assert check.ok, check.problems
    assert check.as_dict()["rows"] == 8


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_are_caught_by_checksum_and_decompression(tmp_path):
    files = make_backup(tmp_path)
    flip(files.data, files.data.stat().st_size // 2)
    problems = verify(files, full=True).problems
    assert "sha256 is" in problems[0] and "corrupt or altered" in problems[0]
    assert any("compressed data is corrupt" in p for p in problems)
    assert str(files.data) in problems[0]


def test_a_truncated_file_is_caught(tmp_path):
    files = make_backup(tmp_path)
    data = files.data.read_bytes()
    files.data.write_bytes(data[: len(data) // 2])
    problems = " ".join(verify(files, full=True).problems)
    assert "size is" in problems and "truncated" in problems and "sha256 is" in problems


def test_a_truncated_file_with_a_matching_manifest_is_caught_by_decompression(tmp_path):
    files = make_backup(tmp_path)
    data = files.data.read_bytes()[:-30]
    files.data.write_bytes(data)
    m = json.loads(files.manifest.read_text())
    m.update(sha256=hashlib.sha256(data).hexdigest(), compressed_bytes=len(data))
    files.manifest.write_text(json.dumps(m))
    assert verify(files, full=False).ok  # checksums alone cannot see it
    problems = verify(files, full=True).problems
    assert any("ends early (the file is truncated)" in p for p in problems)


def test_a_dump_cut_before_compression_is_caught(tmp_path):
    """gzip intact, but the dump inside stops early: no completion line, wrong counts."""
    cut = DUMP[: DUMP.index(b"(3,")]
    files = make_backup(tmp_path, dump=cut)
    m = json.loads(files.manifest.read_text())
    m["dump_bytes"] = len(DUMP)
    files.manifest.write_text(json.dumps(m))
    problems = " ".join(verify(files, full=True).problems)
    assert "incomplete" in problems and "table pizza has 2 rows, manifest says 4" in problems


def test_a_manifest_from_another_backup_is_refused(tmp_path):
    files = make_backup(tmp_path)
    other = make_backup(tmp_path, "oc_pizza-20261128T013000Z")
    files.manifest.write_text(other.manifest.read_text())
    problems = " ".join(verify(files, full=True).problems)
    assert "manifest does not match" in problems


def test_wrong_row_counts_in_the_manifest_are_refused(tmp_path):
    files = make_backup(tmp_path)
    m = json.loads(files.manifest.read_text())
    m["tables"] = {**TABLES, "pizza": 5}
    files.manifest.write_text(json.dumps(m))
    problems = verify(files, full=True).problems
    assert any("table pizza has 4 rows, manifest says 5" in p for p in problems)


def test_missing_or_broken_manifest(tmp_path):
    files = make_backup(tmp_path)
    files.manifest.write_text("{not json")
    assert "manifest unreadable" in verify(files).problems[0]
    files.manifest.unlink()
    assert "manifest missing" in verify(files).problems[0]


def test_multi_member_gzip_decompresses_whole():
    parts = gzip.compress(b"abc") + gzip.compress(b"def")
    import io

    assert b"".join(gunzip_chunks(io.BytesIO(parts))) == b"abcdef"
    with pytest.raises(BackupError, match="corrupt"):
        list(gunzip_chunks(io.BytesIO(parts + b"garbage")))
    with pytest.raises(BackupError, match="truncated"):
        list(gunzip_chunks(io.BytesIO(zlib.compress(b"x" * 1000)[:0] + parts[:-5])))


# --------------------------------------------------------------------------
# finding backups


def test_resolve_by_id_path_file_and_manifest(tmp_path):
    files = make_backup(tmp_path)
    for ref in (files.id, str(files.directory), str(files.data), str(files.manifest)):
        found = resolve(tmp_path, ref)
        assert (found.id, found.data, found.manifest) == (files.id, files.data, files.manifest)


def test_unknown_id_lists_the_available_ones(tmp_path):
    make_backup(tmp_path, "oc_pizza-20261128T013000Z")
    make_backup(tmp_path, "oc_pizza-20261129T013000Z")
    (tmp_path / ".partial-oc_pizza-20261130T013000Z").mkdir()
    with pytest.raises(UnknownBackup) as err:
        resolve(tmp_path, "oc_pizza-19990101T000000Z")
    assert "Available: oc_pizza-20261128T013000Z, oc_pizza-20261129T013000Z" in str(err.value)
    assert ".partial" not in str(err.value)


def test_a_renamed_data_file_is_checked_against_the_manifest_beside_it(tmp_path):
    files = make_backup(tmp_path)
    renamed = files.data.with_name("other.sql.gz")
    files.data.rename(renamed)
    found = resolve(tmp_path, str(renamed))
    problems = verify(found).problems
    assert any("but this is 'other' with file 'other.sql.gz'" in p for p in problems)


def test_checkin_target():
    assert checkin_target("", True) is None
    assert checkin_target("https://hc.example/abc", True) == "https://hc.example/abc"
    assert checkin_target("https://hc.example/abc/", False) == "https://hc.example/abc/fail"


def test_list_table(tmp_path):
    make_backup(tmp_path)
    rows = [verify(backup_files(tmp_path / i, i), full=False).as_dict() for i in list_ids(tmp_path)]
    text = format_list(rows)
    assert "oc_pizza-20261129T013000Z" in text and "verified" in text and "TABLES" in text


# --------------------------------------------------------------------------
# the backup pipeline, with fake mysql and mysqldump clients


FAKE_MYSQL = """#!/usr/bin/env python3
import sys
q = sys.argv[-1]
if "@@hostname" in q:
    print("db1\\t10.11.19-MariaDB-log\\t1\\tutf8mb4\\tutf8mb4_unicode_ci")
elif "'tables', TABLE_NAME" in q:
    for t in ("pizza", "we`ird", "empty"):
        print("tables\\t" + t)
"""


def fake_bin(tmp_path: Path, monkeypatch, dump_script: str) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in (("mysql", FAKE_MYSQL), ("mysqldump", dump_script)):
        path = bindir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


def config(tmp_path: Path) -> object:
    cnf = tmp_path / "backup.cnf"
    cnf.write_text("[client]\n")
    return Config(
        dir=tmp_path / "backups",
        defaults_file=str(cnf),
        compressor="gzip",
        compress_level=1,
        lock_timeout=1,
    )


def test_backup_writes_a_verified_backup_and_manifest(tmp_path, monkeypatch):
    (tmp_path / "dump.sql").write_bytes(DUMP)
    fake_bin(
        tmp_path,
        monkeypatch,
        f'#!/bin/sh\n[ "$1" = --version ] && exit 0\ncat {tmp_path / "dump.sql"}\n',
    )
    result = backup(config(tmp_path), "manual")
    assert result["ok"] and result["tables"] == 3 and result["rows"] == 8
    backup_dir = Path(result["directory"])
    m = json.loads(Path(result["manifest"]).read_text())
    assert m["tables"] == TABLES
    assert m["binlog"] == {"file": "mysql-bin.000007", "position": 4363, "gtid": "0-1-16"}
    assert "--master-data=2" in m["mysqldump"]["options"]
    assert m["server"] == {"hostname": "db1", "version": "10.11.19-MariaDB-log"}
    assert gzip.decompress(Path(result["file"]).read_bytes()) == DUMP
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    assert [p.name for p in (tmp_path / "backups").iterdir() if not p.name.startswith(".")] == [
        backup_dir.name
    ]


def test_a_failing_mysqldump_fails_the_backup_and_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "dump.sql").write_bytes(DUMP[:200])
    fake_bin(
        tmp_path,
        monkeypatch,
        f"#!/bin/sh\ncat {tmp_path / 'dump.sql'}\n"
        "echo 'mysqldump: Error 2013: Lost connection' >&2\nexit 2\n",
    )
    with pytest.raises(BackupError, match=r"exited with status 2: .*Lost connection"):
        backup(config(tmp_path), "manual")
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [".lock"]


def test_a_dump_without_its_completion_line_fails_the_backup(tmp_path, monkeypatch):
    (tmp_path / "dump.sql").write_bytes(DUMP[: DUMP.index(b"-- Dump completed")])
    fake_bin(tmp_path, monkeypatch, f"#!/bin/sh\ncat {tmp_path / 'dump.sql'}\n")
    with pytest.raises(BackupError, match="incomplete"):
        backup(config(tmp_path), "manual")
    assert not list_ids(tmp_path / "backups")


def test_a_failing_compressor_fails_the_backup(tmp_path, monkeypatch):
    (tmp_path / "dump.sql").write_bytes(DUMP)
    fake_bin(tmp_path, monkeypatch, f"#!/bin/sh\ncat {tmp_path / 'dump.sql'}\n")
    bad = tmp_path / "bin" / "badgzip"
    bad.write_text("#!/bin/sh\ncat >/dev/null\nexit 1\n")
    bad.chmod(0o755)
    cfg = config(tmp_path)
    cfg.compressor = "badgzip"
    with pytest.raises(BackupError, match="badgzip failed"):
        backup(cfg, "manual")
    assert not list_ids(tmp_path / "backups")


def test_an_interrupted_backup_is_cleaned_by_the_next_one(tmp_path, monkeypatch):
    (tmp_path / "dump.sql").write_bytes(DUMP)
    fake_bin(tmp_path, monkeypatch, f"#!/bin/sh\ncat {tmp_path / 'dump.sql'}\n")
    leftover = tmp_path / "backups" / ".partial-oc_pizza-20261128T013000Z"
    leftover.mkdir(parents=True)
    (leftover / "oc_pizza-20261128T013000Z.sql.gz").write_bytes(b"half")
    backup(config(tmp_path), "scheduled")
    assert not leftover.exists()
