#!/usr/bin/python3
"""ocpizza-backup: consistent, verified backups of one MariaDB/MySQL database.

Installed on the database hosts by the Ansible role ``mysql_backup`` as
``/usr/local/sbin/ocpizza-backup``; run by ``ocpizza-backup.service`` (daily
timer) and by the playbooks backup.yml, restore.yml and backups-list.yml.
Python 3.10+ standard library only, plus the ``mysql``/``mysqldump`` clients
and ``gzip``.

Commands::

    ocpizza-backup backup [--kind manual] [--json]   one backup, verified
    ocpizza-backup run                               the timer's job: backup + prune
    ocpizza-backup verify ID|PATH [--quick] [--json] check a backup, change nothing
    ocpizza-backup list [--json]                     every backup, with its status
    ocpizza-backup prune [--dry-run] [--json]        apply the retention policy
    ocpizza-backup checkin [success|fail]            monitoring ping (ExecStopPost)
    ocpizza-backup restore-load ID|PATH --scratch DB
    ocpizza-backup restore-switch ID|PATH --scratch DB --previous DB

A backup is a directory ``<dir>/<id>/`` holding ``<id>.sql.gz`` (a
``mysqldump --single-transaction`` of the database, gzip-compressed) and
``<id>.manifest.json`` (server, time, binary log position, sizes, exact row
count of every table as dumped, sha256 of the compressed file). It is
written under ``<dir>/.partial-<id>/`` and renamed into place only once
complete and verified, so a directory named like a backup id is always a
complete backup.

Exit status: 0 success, 1 failure or refusal, 2 unknown backup id.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

TOOL_VERSION = "1"
MANIFEST_FORMAT = 1
DEFAULT_CONFIG = "/etc/ocpizza-backup.conf"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STAMP_RE = re.compile(r"-(\d{8}T\d{6}Z)$")
CHUNK = 1 << 20
KINDS = ("scheduled", "manual", "pre-restore")
MYSQLDUMP_OPTIONS = (
    "--single-transaction",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
    "--default-character-set=utf8mb4",
    "--quick",
)


class BackupError(Exception):
    """A failure or a refusal, with a message meant for the operator."""


class UnknownBackup(BackupError):
    """The backup named on the command line does not exist."""


# --------------------------------------------------------------------------
# Reading a dump: row counts, binary log position, completion marker


# A quoted SQL string as mysqldump writes it ('...' with backslash escapes).
# Written as an "unrolled loop" so that it runs in linear time on any input.
_STRING = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'", re.DOTALL)
_TOKEN = re.compile(
    rb"^(?:INSERT INTO `(?P<insert>(?:[^`]|``)+)` VALUES ?"
    rb"|CREATE TABLE `(?P<create>(?:[^`]|``)+)` \("
    rb"|(?P<delim>DELIMITER ;;)$"
    rb"|-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='(?P<binfile>[^']+)',"
    rb" (?:MASTER|SOURCE)_LOG_POS=(?P<binpos>\d+)"
    rb"|-- SET GLOBAL gtid_slave_pos='(?P<gtid>[^']*)'"
    rb"|(?P<done>-- Dump completed))",
    re.MULTILINE,
)
_DELIM_END = re.compile(rb"^DELIMITER ;$", re.MULTILINE)


def _unquote_name(raw: bytes) -> str:
    return raw.replace(b"``", b"`").decode("utf-8", "replace")


def count_rows(values: bytes) -> int:
    """Rows in a piece of the VALUES list of mysqldump INSERT statements.

    Outside quoted strings a VALUES list holds numbers, NULL, 0x… literals,
    commas and the parentheses of its rows, so every "(" left once the strings
    are removed opens one row. Strings never span lines (mysqldump escapes
    newlines), so any run of whole lines can be counted on its own.
    """
    return _STRING.sub(b"", values).count(b"(")


class DumpScanner:
    """Follow a mysqldump stream chunk by chunk and describe what it holds.

    ``tables`` maps every base table (``CREATE TABLE``) to the number of rows
    its INSERT statements carry: an exact count of what the dump restores.
    Trigger, routine and event bodies (between ``DELIMITER ;;`` and
    ``DELIMITER ;``) are skipped, so SQL text inside them is never counted.
    Works with both one-line extended INSERTs and MariaDB's one row per line.
    """

    def __init__(self) -> None:
        self.tables: dict[str, int] = {}
        self.binlog_file: str | None = None
        self.binlog_position: int | None = None
        self.gtid: str | None = None
        self.completed = False
        self.bytes = 0
        self._pending = b""
        self._table: str | None = None
        self._in_delimiter = False

    def feed(self, data: bytes) -> None:
        """Take the next piece of the stream."""
        self.bytes += len(data)
        buf = self._pending + data if self._pending else data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            self._pending = bytes(buf)
            return
        self._pending = bytes(buf[cut:])
        self._scan(bytes(buf[:cut]))

    def close(self) -> None:
        """The stream ended: scan what is left of the last line."""
        if self._pending:
            self._scan(self._pending)
            self._pending = b""

    def _scan(self, text: bytes) -> None:
        pos, end = 0, len(text)
        while pos < end:
            if self._table is not None:
                stop = text.find(b");\n", pos)
                if stop < 0 and text.endswith(b");"):
                    stop = end - 2
                upto = end if stop < 0 else stop + 2
                self.tables[self._table] = self.tables.get(self._table, 0) + count_rows(
                    text[pos:upto]
                )
                if stop < 0:
                    return
                self._table, pos = None, upto
                continue
            if self._in_delimiter:
                m = _DELIM_END.search(text, pos)
                if m is None:
                    return
                self._in_delimiter, pos = False, m.end()
                continue
            m = _TOKEN.search(text, pos)
            if m is None:
                return
            pos = m.end()
            if m.group("insert") is not None:
                self._table = _unquote_name(m.group("insert"))
                self.tables.setdefault(self._table, 0)
            elif m.group("create") is not None:
                self.tables.setdefault(_unquote_name(m.group("create")), 0)
            elif m.group("delim") is not None:
                self._in_delimiter = True
            elif m.group("binfile") is not None:
                self.binlog_file = m.group("binfile").decode()
                self.binlog_position = int(m.group("binpos"))
            elif m.group("gtid") is not None:
                self.gtid = m.group("gtid").decode()
            elif m.group("done") is not None:
                self.completed = True


# --------------------------------------------------------------------------
# Configuration


@dataclasses.dataclass
class Config:
    """Settings from /etc/ocpizza-backup.conf (section [backup])."""

    dir: Path = Path("/var/backups/ocpizza")
    database: str = "oc_pizza"
    defaults_file: str = "/etc/mysql/backup.cnf"
    keep_daily: int = 7
    keep_weekly: int = 4
    compressor: str = "gzip"
    compress_level: int = 6
    checkin_url: str = ""
    lock_timeout: int = 600

    @classmethod
    def load(cls, path: str | None) -> Config:
        cfg = cls()
        file = Path(path or DEFAULT_CONFIG)
        if not file.exists():
            if path:
                raise BackupError(f"configuration file {file} does not exist")
            return cfg
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(file, encoding="utf-8")
        if parser.has_section("backup"):
            sec = parser["backup"]
            cfg.dir = Path(sec.get("dir", str(cfg.dir)))
            cfg.database = sec.get("database", cfg.database)
            cfg.defaults_file = sec.get("defaults_file", cfg.defaults_file)
            cfg.keep_daily = sec.getint("keep_daily", cfg.keep_daily)
            cfg.keep_weekly = sec.getint("keep_weekly", cfg.keep_weekly)
            cfg.compressor = sec.get("compressor", cfg.compressor)
            cfg.compress_level = sec.getint("compress_level", cfg.compress_level)
            cfg.checkin_url = sec.get("checkin_url", cfg.checkin_url).strip()
            cfg.lock_timeout = sec.getint("lock_timeout", cfg.lock_timeout)
        return cfg


# --------------------------------------------------------------------------
# Logging: to stderr, with a syslog priority prefix when the journal reads it


def log(message: str, level: str = "info") -> None:
    """Write one line for the operator (and the journal)."""
    prefix = ""
    if os.environ.get("JOURNAL_STREAM"):
        prefix = {"err": "<3>", "warning": "<4>", "info": "<6>"}.get(level, "<6>")
    elif level != "info":
        prefix = f"{level}: "
    print(f"{prefix}{message}", file=sys.stderr, flush=True)


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> dt.datetime:
    """Parse an ISO 8601 UTC time as written in manifests."""
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def quote_name(name: str) -> str:
    """A MySQL identifier, back-quoted."""
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str) -> str:
    """A MySQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------
# Talking to the server through the mysql client


class Mysql:
    """Run SQL with the ``mysql`` client, as root (unix socket) or as the
    backup user (``defaults_file``)."""

    def __init__(self, defaults_file: str | None = None) -> None:
        self.defaults_file = defaults_file

    def _base(self, program: str) -> list[str]:
        argv = [program]
        if self.defaults_file:
            argv.append(f"--defaults-extra-file={self.defaults_file}")
        return argv

    def query(self, sql: str, database: str | None = None) -> list[list[str]]:
        """Rows of the last result set, as lists of strings (NULL -> 'NULL')."""
        argv = [*self._base("mysql"), "--batch", "--skip-column-names",
                "--default-character-set=utf8mb4", "-e", sql]
        if database:
            argv.append(database)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BackupError(f"mysql failed ({proc.stderr.strip() or proc.returncode}) running: "
                              f"{sql[:200]}")
        return [[_unescape_batch(f) for f in line.split("\t")]
                for line in proc.stdout.splitlines()]

    def execute(self, sql: str, database: str | None = None) -> None:
        """Run statements (which may change DELIMITER) fed on standard input."""
        argv = [*self._base("mysql"), "--batch", "--default-character-set=utf8mb4"]
        if database:
            argv.append(database)
        proc = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BackupError(f"mysql failed: {proc.stderr.strip() or proc.returncode}")


def _unescape_batch(field: str) -> str:
    if "\\" not in field:
        return field
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m.group(1), m.group(1)),
                  field)


def schema_objects(db: Mysql, database: str) -> dict[str, list[str]]:
    """Names of the base tables, views, triggers, routines and events."""
    q = quote_string(database)
    rows = db.query(
        f"SELECT 'tables', TABLE_NAME FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA={q} AND TABLE_TYPE='BASE TABLE' "
        f"UNION ALL SELECT 'views', TABLE_NAME FROM information_schema.VIEWS "
        f"WHERE TABLE_SCHEMA={q} "
        f"UNION ALL SELECT 'triggers', TRIGGER_NAME FROM information_schema.TRIGGERS "
        f"WHERE TRIGGER_SCHEMA={q} "
        f"UNION ALL SELECT 'routines', CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) "
        f"FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA={q} "
        f"UNION ALL SELECT 'events', EVENT_NAME FROM information_schema.EVENTS "
        f"WHERE EVENT_SCHEMA={q}"
    )
    objects: dict[str, list[str]] = {k: [] for k in ("tables", "views", "triggers", "routines",
                                                      "events")}
    for kind, name in rows:
        objects[kind].append(name)
    return {k: sorted(v) for k, v in objects.items()}


def database_exists(db: Mysql, database: str) -> bool:
    rows = db.query("SELECT COUNT(*) FROM information_schema.SCHEMATA "
                    f"WHERE SCHEMA_NAME={quote_string(database)}")
    return rows[0][0] != "0"


def exact_counts(db: Mysql, database: str, tables: Iterable[str]) -> dict[str, int]:
    """SELECT COUNT(*) of every table, in one statement."""
    names = sorted(tables)
    if not names:
        return {}
    parts = [f"SELECT {quote_string(t)}, COUNT(*) FROM {quote_name(database)}.{quote_name(t)}"
             for t in names]
    return {name: int(count) for name, count in db.query(" UNION ALL ".join(parts))}


# --------------------------------------------------------------------------
# Backups on disk


@dataclasses.dataclass
class BackupFiles:
    """Where one backup lives."""

    id: str
    directory: Path
    data: Path
    manifest: Path


def backup_files(directory: Path, backup_id: str) -> BackupFiles:
    return BackupFiles(backup_id, directory, directory / f"{backup_id}.sql.gz",
                       directory / f"{backup_id}.manifest.json")


def list_ids(root: Path) -> list[str]:
    """Ids of the backup directories under root (hidden work dirs excluded)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and ID_RE.match(p.name))


def resolve(root: Path, ref: str) -> BackupFiles:
    """Find a backup from an id, or from a path to its directory, data file or manifest."""
    if "/" not in ref:
        if not ID_RE.match(ref) or not (root / ref).is_dir():
            ids = list_ids(root)
            raise UnknownBackup(
                f"no backup with id '{ref}' in {root}. Available: "
                + (", ".join(ids) if ids else "none (run playbooks/backup.yml first)")
            )
        return backup_files(root / ref, ref)
    path = Path(ref)
    if path.is_dir():
        manifests = sorted(path.glob("*.manifest.json"))
        if len(manifests) != 1:
            raise BackupError(f"{path}: expected one *.manifest.json in the directory, "
                              f"found {len(manifests)}")
        backup_id = manifests[0].name.removesuffix(".manifest.json")
        return backup_files(path, backup_id)
    for suffix in (".sql.gz", ".manifest.json"):
        if path.name.endswith(suffix):
            if not path.exists():
                raise UnknownBackup(f"{path} does not exist")
            backup_id = path.name.removesuffix(suffix)
            files = backup_files(path.parent, backup_id)
            if suffix == ".sql.gz" and not files.manifest.exists():
                # A renamed data file: check it against the manifest beside it,
                # which then reports the mismatch.
                others = sorted(path.parent.glob("*.manifest.json"))
                if len(others) == 1:
                    files.manifest = others[0]
            return files
    if not path.exists():
        raise UnknownBackup(f"{path} does not exist")
    raise BackupError(f"{path}: not a backup (expected a directory, a .sql.gz or a "
                      ".manifest.json)")


REQUIRED_FIELDS = {"format": int, "id": str, "database": str, "file": str, "sha256": str,
                   "compressed_bytes": int, "dump_bytes": int, "tables": dict,
                   "finished_at": str}


def read_manifest(files: BackupFiles) -> tuple[dict[str, Any] | None, list[str]]:
    """The manifest, and what is wrong with it (empty when it is usable)."""
    if not files.manifest.exists():
        return None, [f"{files.manifest}: manifest missing"]
    try:
        manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"{files.manifest}: manifest unreadable ({exc})"]
    if not isinstance(manifest, dict):
        return None, [f"{files.manifest}: manifest is not a JSON object"]
    problems = [f"{files.manifest}: field '{k}' missing or not {t.__name__}"
                for k, t in REQUIRED_FIELDS.items() if not isinstance(manifest.get(k), t)]
    if problems:
        return None, problems
    if manifest["format"] != MANIFEST_FORMAT:
        problems.append(f"{files.manifest}: manifest format {manifest['format']} "
                        f"(this tool reads {MANIFEST_FORMAT})")
    if manifest["id"] != files.id or manifest["file"] != files.data.name:
        problems.append(
            f"{files.manifest}: manifest does not match: it describes backup "
            f"'{manifest['id']}' with file '{manifest['file']}', but this is "
            f"'{files.id}' with file '{files.data.name}'")
    try:
        parse_time(manifest["finished_at"])
    except ValueError:
        problems.append(f"{files.manifest}: finished_at '{manifest['finished_at']}' is not a "
                        "UTC time like 2026-11-29T07:15:00Z")
    return manifest, problems


@dataclasses.dataclass
class Verification:
    """The outcome of checking one backup."""

    files: BackupFiles
    manifest: dict[str, Any] | None
    problems: list[str]
    full: bool

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest or {}
        return {
            "id": self.files.id, "directory": str(self.files.directory),
            "file": str(self.files.data), "manifest": str(self.files.manifest),
            "ok": self.ok, "full": self.full, "problems": self.problems,
            "kind": m.get("kind"), "time": m.get("finished_at"), "database": m.get("database"),
            "compressed_bytes": m.get("compressed_bytes"), "dump_bytes": m.get("dump_bytes"),
            "tables": len(m.get("tables") or {}), "rows": sum((m.get("tables") or {}).values()),
            "sha256": m.get("sha256"), "binlog": m.get("binlog"),
        }


def gunzip_chunks(stream: IO[bytes], on_compressed: Any = None) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream piece by piece.

    Raises BackupError when the data is corrupt or ends early: zlib checks
    every member's CRC-32 and length, as ``gzip -t`` does.
    """
    decomp = zlib.decompressobj(wbits=31)
    seen_any = False
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        seen_any = True
        if on_compressed:
            on_compressed(chunk)
        data = chunk
        while data:
            try:
                out = decomp.decompress(data, 16 * CHUNK)
            except zlib.error as exc:
                raise BackupError(f"compressed data is corrupt ({exc})") from exc
            if out:
                yield out
            if decomp.eof:
                data = decomp.unused_data
                if data.strip(b"\0"):
                    decomp = zlib.decompressobj(wbits=31)
                else:
                    data = b""
            else:
                data = decomp.unconsumed_tail
    if not seen_any:
        raise BackupError("compressed file is empty")
    if not decomp.eof:
        try:
            tail = decomp.flush()
        except zlib.error as exc:  # pragma: no cover
            raise BackupError(f"compressed data is corrupt ({exc})") from exc
        if tail:
            yield tail
        raise BackupError("compressed data ends early (the file is truncated)")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def compare_tables(expected: dict[str, int], actual: dict[str, int], what: str) -> list[str]:
    """Differences between two {table: rows} maps, one message each."""
    problems = []
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing:
        problems.append(f"{what}: tables missing: {', '.join(missing)}")
    if extra:
        problems.append(f"{what}: unexpected tables: {', '.join(extra)}")
    for table in sorted(set(expected) & set(actual)):
        if expected[table] != actual[table]:
            problems.append(f"{what}: table {table} has {actual[table]} rows, manifest says "
                            f"{expected[table]}")
    return problems


def verify(files: BackupFiles, full: bool = True) -> Verification:
    """Check a backup against its manifest without touching any database.

    Quick: manifest readable and matching, size and sha256 of the compressed
    file. Full, in addition: the whole file decompresses (CRC and length of
    every gzip member, like ``gzip -t``), the dump is complete, its size and
    the tables and row counts it holds are those of the manifest.
    """
    manifest, problems = read_manifest(files)
    if not files.data.exists():
        problems.append(f"{files.data}: data file missing")
        return Verification(files, manifest, problems, full)
    if manifest is None:
        return Verification(files, manifest, problems, full)
    size = files.data.stat().st_size
    if size != manifest["compressed_bytes"]:
        problems.append(f"{files.data}: size is {size} bytes, manifest says "
                        f"{manifest['compressed_bytes']} (file truncated or replaced)")
    if not full:
        digest = sha256_file(files.data)
    else:
        hasher = hashlib.sha256()
        scanner = DumpScanner()
        try:
            with files.data.open("rb") as fh:
                for out in gunzip_chunks(fh, hasher.update):
                    scanner.feed(out)
            scanner.close()
            if not scanner.completed:
                problems.append(f"{files.data}: the dump inside is incomplete (no "
                                "'-- Dump completed' line at its end)")
            if scanner.bytes != manifest["dump_bytes"]:
                problems.append(f"{files.data}: decompresses to {scanner.bytes} bytes, manifest "
                                f"says {manifest['dump_bytes']}")
            problems.extend(compare_tables(manifest["tables"], scanner.tables,
                                           f"{files.data}: dump content"))
        except BackupError as exc:
            problems.append(f"{files.data}: {exc}")
            # Hash the rest, to report a checksum mismatch as well.
            with files.data.open("rb") as fh:
                hasher = hashlib.sha256()
                while chunk := fh.read(CHUNK):
                    hasher.update(chunk)
        digest = hasher.hexdigest()
    if digest != manifest["sha256"]:
        problems.insert(0, f"{files.data}: sha256 is {digest}, manifest says "
                           f"{manifest['sha256']} (file corrupt or altered)")
    return Verification(files, manifest, problems, full)


# --------------------------------------------------------------------------
# Retention


@dataclasses.dataclass(frozen=True)
class RetentionEntry:
    """What the retention policy needs to know about one backup."""

    id: str
    time: dt.datetime | None
    good: bool


@dataclasses.dataclass
class RetentionPlan:
    keep: dict[str, list[str]]
    prune: list[str]


def plan_retention(entries: Sequence[RetentionEntry], keep_daily: int,
                   keep_weekly: int) -> RetentionPlan:
    """Decide which backups to keep; a pure function of the backups.

    * daily: the newest good backup of each of the ``keep_daily`` most recent
      UTC days that have one;
    * weekly: the newest good backup of each of the ``keep_weekly`` most
      recent ISO weeks that have one;
    * the newest good backup is always kept;
    * a backup that does not verify is never counted: it is kept while it is
      newer than the oldest kept good backup (to be looked at), pruned after;
    * a backup whose time is unknown is never pruned;
    * with no good backup at all, nothing is pruned.
    """
    keep: dict[str, list[str]] = {e.id: [] for e in entries}
    good = sorted((e for e in entries if e.good and e.time is not None),
                  key=lambda e: (e.time, e.id), reverse=True)
    if not good:
        for reasons in keep.values():
            reasons.append("no verified backup exists: nothing is pruned")
        return RetentionPlan(keep, [])
    keep[good[0].id].append("newest good backup")
    days: list[dt.date] = []
    weeks: list[tuple[int, int]] = []
    for entry in good:
        assert entry.time is not None
        day = entry.time.astimezone(dt.UTC).date()
        if day not in days and len(days) < keep_daily:
            days.append(day)
            keep[entry.id].append(f"daily {day.isoformat()}")
        year, week, _ = day.isocalendar()
        if (year, week) not in weeks and len(weeks) < keep_weekly:
            weeks.append((year, week))
            keep[entry.id].append(f"weekly {year}-W{week:02d}")
    kept_times = [e.time for e in good if keep[e.id] and e.time is not None]
    oldest_kept = min(kept_times)
    for entry in entries:
        if entry.time is None:
            keep[entry.id].append("time unknown: never pruned")
        elif not entry.good and entry.time > oldest_kept:
            keep[entry.id].append("does not verify: kept for inspection")
    prune = sorted(e.id for e in entries if not keep[e.id])
    return RetentionPlan({k: v for k, v in keep.items() if v}, prune)


def retention_entry(root: Path, backup_id: str) -> tuple[RetentionEntry, Verification]:
    check = verify(backup_files(root / backup_id, backup_id), full=False)
    when: dt.datetime | None = None
    if check.manifest is not None:
        with contextlib.suppress(ValueError):
            when = parse_time(check.manifest["finished_at"])
    if when is None and (m := STAMP_RE.search(backup_id)):
        when = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return RetentionEntry(backup_id, when, check.ok), check


def prune(cfg: Config, dry_run: bool = False) -> dict[str, Any]:
    """Apply the retention policy to cfg.dir; return what was kept and removed."""
    entries = []
    for backup_id in list_ids(cfg.dir):
        entry, check = retention_entry(cfg.dir, backup_id)
        if not check.ok:
            log(f"backup {backup_id} does not verify: {'; '.join(check.problems)}", "warning")
        entries.append(entry)
    plan = plan_retention(entries, cfg.keep_daily, cfg.keep_weekly)
    for backup_id in plan.prune:
        if dry_run:
            log(f"would prune {backup_id}")
        else:
            shutil.rmtree(cfg.dir / backup_id)
            log(f"pruned {backup_id} (retention: {cfg.keep_daily} daily, "
                f"{cfg.keep_weekly} weekly)")
    return {"kept": plan.keep, "pruned": plan.prune, "dry_run": dry_run}


# --------------------------------------------------------------------------
# Locking and work directories


@contextlib.contextmanager
def locked(cfg: Config, what: str) -> Iterator[None]:
    """Hold the backup directory's lock (backups, prunes and restores never overlap)."""
    cfg.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (cfg.dir / ".lock").open("a") as fh:
        deadline = time.monotonic() + cfg.lock_timeout
        announced = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackupError(f"{what}: another backup or restore still holds "
                                      f"{cfg.dir}/.lock after {cfg.lock_timeout} s") from None
                if not announced:
                    log(f"{what}: waiting for another backup or restore to finish")
                    announced = True
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def clean_work_dirs(cfg: Config) -> None:
    """Remove what interrupted runs left (call with the lock held)."""
    if not cfg.dir.is_dir():
        return
    for path in cfg.dir.iterdir():
        if path.name.startswith(".partial-"):
            shutil.rmtree(path, ignore_errors=True)
            log(f"removed {path.name}, left by an interrupted backup", "warning")
        elif path.name.startswith(".incoming-") and time.time() - path.stat().st_mtime > 86400:
            shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# Taking a backup


def backup(cfg: Config, kind: str = "manual") -> dict[str, Any]:
    """Dump cfg.database, compress, describe, verify, then publish atomically."""
    with locked(cfg, "backup"):
        clean_work_dirs(cfg)
        return _backup_locked(cfg, kind)


def _backup_locked(cfg: Config, kind: str) -> dict[str, Any]:
    started = utc_now()
    backup_id = f"{cfg.database}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    final_dir = cfg.dir / backup_id
    if final_dir.exists():
        raise BackupError(f"backup {backup_id} already exists (two backups in the same second)")
    user = Mysql(cfg.defaults_file)
    if not Path(cfg.defaults_file).exists():
        raise BackupError(f"credentials file {cfg.defaults_file} does not exist")
    info = user.query(
        "SELECT @@hostname, @@version, @@log_bin, DEFAULT_CHARACTER_SET_NAME, "
        "DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
        f"WHERE SCHEMA_NAME={quote_string(cfg.database)}")
    if not info:
        raise BackupError(f"database {cfg.database} does not exist (or the backup user "
                          "cannot see it)")
    hostname, version, log_bin, charset, collation = info[0]
    objects_before = schema_objects(user, cfg.database)
    options = list(MYSQLDUMP_OPTIONS)
    if log_bin == "1":
        options.append("--master-data=2")
    else:
        log("binary logging is off: the manifest records no binlog position", "warning")
    work = cfg.dir / f".partial-{backup_id}"
    work.mkdir(mode=0o700)
    files = backup_files(work, backup_id)
    dump_argv = ["mysqldump", f"--defaults-extra-file={cfg.defaults_file}", *options,
                 cfg.database]
    scanner = DumpScanner()
    with tempfile.TemporaryFile() as dump_err, files.data.open("wb") as out:
        dump = subprocess.Popen(dump_argv, stdout=subprocess.PIPE, stderr=dump_err)
        compressor = cfg.compressor if shutil.which(cfg.compressor) else "gzip"
        gz = subprocess.Popen([compressor, f"-{cfg.compress_level}", "-c"],
                              stdin=subprocess.PIPE, stdout=out)
        assert dump.stdout is not None and gz.stdin is not None
        broken = None
        try:
            while chunk := dump.stdout.read(CHUNK):
                scanner.feed(chunk)
                gz.stdin.write(chunk)
        except OSError as exc:
            broken = exc
            dump.kill()
        finally:
            with contextlib.suppress(OSError):
                gz.stdin.close()
        scanner.close()
        dump_rc, gz_rc = dump.wait(), gz.wait()
        dump_err.seek(0)
        err_text = dump_err.read().decode("utf-8", "replace").strip()
        out.flush()
        os.fsync(out.fileno())
    failure = None
    if dump_rc != 0:
        failure = f"mysqldump exited with status {dump_rc}: {err_text[-500:] or 'no message'}"
    elif gz_rc != 0 or broken is not None:
        failure = (f"{compressor} failed (status {gz_rc}"
                   f"{'; ' + str(broken) if broken else ''})")
    elif not scanner.completed:
        failure = "the dump is incomplete (no '-- Dump completed' line)"
    if failure:
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(f"backup of {cfg.database} failed: {failure}")
    if err_text:
        log(f"mysqldump said: {err_text[-500:]}", "warning")
    objects_after = schema_objects(user, cfg.database)
    if objects_after != objects_before or set(scanner.tables) != set(objects_after["tables"]):
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(f"backup of {cfg.database} failed: the schema changed while it was "
                          "dumped (a migration?); run the backup again")
    finished = utc_now()
    manifest = {
        "format": MANIFEST_FORMAT,
        "tool": f"ocpizza-backup {TOOL_VERSION}",
        "id": backup_id,
        "kind": kind,
        "database": cfg.database,
        "charset": charset,
        "collation": collation,
        "file": files.data.name,
        "compression": "gzip",
        "compressor": f"{compressor} -{cfg.compress_level}",
        "started_at": iso(started),
        "finished_at": iso(finished),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "host": socket.getfqdn(),
        "server": {"hostname": hostname, "version": version},
        "binlog": ({"file": scanner.binlog_file, "position": scanner.binlog_position,
                    "gtid": scanner.gtid} if scanner.binlog_file else None),
        "mysqldump": {"options": options, "version": _mysqldump_version()},
        "dump_bytes": scanner.bytes,
        "compressed_bytes": files.data.stat().st_size,
        "sha256": sha256_file(files.data),
        "tables": dict(sorted(scanner.tables.items())),
        "views": objects_after["views"],
        "triggers": objects_after["triggers"],
        "routines": objects_after["routines"],
        "events": objects_after["events"],
    }
    tmp_manifest = files.manifest.with_name(files.manifest.name + ".tmp")
    with tmp_manifest.open("w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp_manifest.rename(files.manifest)
    check = verify(files, full=True)
    if not check.ok:
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError("the new backup does not verify: " + "; ".join(check.problems))
    _fsync_dir(work)
    work.rename(final_dir)
    _fsync_dir(cfg.dir)
    log(f"backup {backup_id} done: {len(scanner.tables)} tables, "
        f"{sum(scanner.tables.values())} rows, {human_size(scanner.bytes)} dumped, "
        f"{human_size(manifest['compressed_bytes'])} stored in {final_dir}")
    result = verify(backup_files(final_dir, backup_id), full=False).as_dict()
    result["duration_seconds"] = manifest["duration_seconds"]
    return result


def _mysqldump_version() -> str:
    with contextlib.suppress(OSError):
        proc = subprocess.run(["mysqldump", "--version"], capture_output=True, text=True,
                              check=False)
        return proc.stdout.strip()
    return "unknown"  # pragma: no cover


# --------------------------------------------------------------------------
# Monitoring check-in (healthchecks.io style)


def checkin_target(url: str, success: bool) -> str | None:
    """The URL to ping: url on success, url/fail on failure, None when unset."""
    url = url.strip()
    if not url:
        return None
    return url if success else url.rstrip("/") + "/fail"


def checkin(cfg: Config, success: bool) -> bool:
    """GET the check-in URL; never raises, returns whether the ping got through."""
    target = checkin_target(cfg.checkin_url, success)
    if target is None:
        return True
    for attempt in (1, 2, 3):
        try:
            with urllib.request.urlopen(target, timeout=10) as resp:
                resp.read(1024)
            log(f"check-in sent ({'success' if success else 'failure'})")
            return True
        except (urllib.error.URLError, OSError) as exc:
            if attempt == 3:
                log(f"check-in failed: {exc}", "warning")
            else:
                time.sleep(2 * attempt)
    return False


# --------------------------------------------------------------------------
# Restore: load into a scratch database and check, then switch into place


def _new_database(root: Mysql, name: str, manifest: dict[str, Any]) -> None:
    charset = manifest.get("charset") or "utf8mb4"
    collation = manifest.get("collation") or "utf8mb4_unicode_ci"
    if not re.match(r"^[A-Za-z0-9_]+$", charset + collation):
        raise BackupError(f"manifest charset/collation look wrong: {charset} {collation}")
    root.query(f"CREATE DATABASE {quote_name(name)} CHARACTER SET {charset} COLLATE {collation}")


def check_database(root: Mysql, database: str, manifest: dict[str, Any],
                   counts: bool = True) -> list[str]:
    """Differences between a database and a manifest (tables, rows, other objects)."""
    objects = schema_objects(root, database)
    if counts:
        actual = exact_counts(root, database, objects["tables"])
        problems = compare_tables(manifest["tables"], actual, database)
    else:
        problems = compare_tables({t: 0 for t in manifest["tables"]},
                                  {t: 0 for t in objects["tables"]}, database)
    for kind in ("views", "triggers", "routines", "events"):
        if kind in manifest and sorted(manifest[kind]) != objects[kind]:
            problems.append(f"{database}: {kind} are {objects[kind] or 'none'}, manifest says "
                            f"{sorted(manifest[kind]) or 'none'}")
    return problems


def restore_load(cfg: Config, files: BackupFiles, scratch: str) -> dict[str, Any]:
    """Verify the backup and load it into a new scratch database, then check
    tables, exact row counts and objects against the manifest. The live
    database is not touched; on any problem the scratch database is dropped."""
    with locked(cfg, "restore"):
        manifest, problems = read_manifest(files)
        if manifest is None or problems:
            raise BackupError("refused: " + "; ".join(problems))
        root = Mysql()
        if database_exists(root, scratch):
            raise BackupError(f"refused: database {scratch} already exists")
        _new_database(root, scratch, manifest)
        try:
            _load(files, manifest, root, scratch)
            problems = check_database(root, scratch, manifest)
            if problems:
                raise BackupError("the restored copy does not match the manifest: "
                                  + "; ".join(problems))
        except BaseException:
            with contextlib.suppress(BackupError):
                root.query(f"DROP DATABASE IF EXISTS {quote_name(scratch)}")
            raise
    log(f"backup {files.id} loaded into {scratch}: {len(manifest['tables'])} tables and their "
        "exact row counts match the manifest")
    return {"id": files.id, "scratch": scratch, "tables": manifest["tables"],
            "rows": sum(manifest["tables"].values()), "time": manifest["finished_at"],
            "objects": {k: manifest.get(k, []) for k in ("views", "triggers", "routines",
                                                          "events")}}


def _load(files: BackupFiles, manifest: dict[str, Any], root: Mysql, database: str) -> None:
    """Stream the dump into a database, checking its sha256 and content on the way."""
    hasher = hashlib.sha256()
    scanner = DumpScanner()
    argv = [*root._base("mysql"), "--batch", "--default-character-set=utf8mb4", database]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=err)
        assert proc.stdin is not None
        failure = None
        try:
            with files.data.open("rb") as fh:
                for out in gunzip_chunks(fh, hasher.update):
                    scanner.feed(out)
                    proc.stdin.write(out)
            scanner.close()
        except BackupError as exc:
            failure = str(exc)
            proc.kill()
        except BrokenPipeError:
            pass
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        rc = proc.wait()
        err.seek(0)
        message = err.read().decode("utf-8", "replace").strip()
    if failure:
        raise BackupError(f"{files.data}: {failure}")
    if rc != 0:
        raise BackupError(f"loading {files.data} into {database} failed: {message[-500:]}")
    if hasher.hexdigest() != manifest["sha256"]:
        raise BackupError(f"{files.data}: sha256 changed while it was loaded")
    content = compare_tables(manifest["tables"], scanner.tables, f"{files.data}")
    if not scanner.completed or content:
        raise BackupError(f"{files.data}: content does not match the manifest "
                          + "; ".join(content))


def _objects_sql(database: str, views: list[str]) -> str:
    """DDL of the triggers, routines, events and views of a database (mysqldump)."""
    base = ["mysqldump", "--skip-comments", "--skip-dump-date", "--no-create-db",
            "--default-character-set=utf8mb4"]
    parts = []
    proc = subprocess.run([*base, "--no-data", "--no-create-info", "--routines", "--triggers",
                           "--events", database], capture_output=True, check=False)
    if proc.returncode != 0:
        raise BackupError(f"mysqldump of the objects of {database} failed: "
                          f"{proc.stderr.decode('utf-8', 'replace').strip()}")
    parts.append(proc.stdout.decode("utf-8"))
    if views:
        proc = subprocess.run([*base, "--no-data", "--skip-triggers", database, *views],
                              capture_output=True, check=False)
        if proc.returncode != 0:
            raise BackupError(f"mysqldump of the views of {database} failed: "
                              f"{proc.stderr.decode('utf-8', 'replace').strip()}")
        parts.append(proc.stdout.decode("utf-8"))
    return "\n".join(parts)


def _drop_objects(root: Mysql, database: str, objects: dict[str, list[str]]) -> None:
    db = quote_name(database)
    statements = [f"DROP TRIGGER IF EXISTS {db}.{quote_name(t)};" for t in objects["triggers"]]
    statements += [f"DROP VIEW IF EXISTS {db}.{quote_name(v)};" for v in objects["views"]]
    for routine in objects["routines"]:
        rtype, name = routine.split(" ", 1)
        statements.append(f"DROP {rtype} IF EXISTS {db}.{quote_name(name)};")
    statements += [f"DROP EVENT IF EXISTS {db}.{quote_name(e)};" for e in objects["events"]]
    if statements:
        root.execute("\n".join(statements))


def _move_tables(root: Mysql, source: str, target: str, tables: list[str]) -> None:
    """Move tables between databases in one atomic RENAME TABLE."""
    if not tables:
        return
    src, dst = quote_name(source), quote_name(target)
    pairs = ", ".join(f"{src}.{quote_name(t)} TO {dst}.{quote_name(t)}" for t in tables)
    root.execute(f"SET SESSION lock_wait_timeout = 60;\nRENAME TABLE {pairs};")


def restore_switch(cfg: Config, files: BackupFiles, scratch: str, previous: str) -> dict[str, Any]:
    """Put the checked scratch copy in place of the live database.

    The live tables move to ``previous`` and the scratch tables into the live
    database, each set in one atomic RENAME TABLE; triggers, views, routines
    and events are recreated from the scratch copy's own definitions. If any
    step fails, the live database is put back as it was.
    """
    live = cfg.database
    with locked(cfg, "restore"):
        manifest, problems = read_manifest(files)
        if manifest is None or problems:
            raise BackupError("refused: " + "; ".join(problems))
        root = Mysql()
        if not database_exists(root, scratch):
            raise BackupError(f"refused: scratch database {scratch} does not exist")
        problems = check_database(root, scratch, manifest, counts=False)
        if problems:
            raise BackupError("refused: " + "; ".join(problems))
        live_exists = database_exists(root, live)
        if live_exists and database_exists(root, previous):
            raise BackupError(f"refused: database {previous} already exists")
        new_objects = schema_objects(root, scratch)
        new_sql = _objects_sql(scratch, new_objects["views"])
        old_objects = schema_objects(root, live) if live_exists else None
        old_sql = _objects_sql(live, old_objects["views"]) if old_objects else ""
        steps: list[str] = []
        try:
            if old_objects is not None:
                _new_database(root, previous, manifest)
                steps.append("previous")
                _drop_objects(root, live, old_objects)
                steps.append("old objects dropped")
                _move_tables(root, live, previous, old_objects["tables"])
                steps.append("old tables moved")
            else:
                _new_database(root, live, manifest)
            _drop_objects(root, scratch, new_objects)
            steps.append("scratch objects dropped")
            _move_tables(root, scratch, live, new_objects["tables"])
            steps.append("new tables moved")
            root.execute(new_sql, database=live)
            steps.append("new objects created")
            problems = check_database(root, live, manifest, counts=False)
            if problems:
                raise BackupError("after the switch: " + "; ".join(problems))
        except BackupError as exc:
            rollback = _rollback(root, live, scratch, previous, steps, new_objects, old_objects,
                                 old_sql)
            raise BackupError(f"switch failed ({exc}); {rollback}") from exc
        root.query(f"DROP DATABASE {quote_name(scratch)}")
    log(f"restored backup {files.id} into {live}" + (
        f"; the tables it replaced are in {previous}" if old_objects else ""))
    return {"id": files.id, "database": live, "previous": previous if old_objects else None,
            "tables": manifest["tables"], "rows": sum(manifest["tables"].values()),
            "time": manifest["finished_at"]}


def _rollback(root: Mysql, live: str, scratch: str, previous: str, steps: list[str],
              new_objects: dict[str, list[str]], old_objects: dict[str, list[str]] | None,
              old_sql: str) -> str:
    """Undo a partial switch; say what state the databases are in."""
    try:
        if "new tables moved" in steps:
            _drop_objects(root, live, new_objects)
            _move_tables(root, live, scratch, new_objects["tables"])
        if old_objects is not None and "old tables moved" in steps:
            _move_tables(root, previous, live, old_objects["tables"])
        if old_objects is not None and "old objects dropped" in steps:
            root.execute(old_sql, database=live)
        if "previous" in steps:
            root.query(f"DROP DATABASE IF EXISTS {quote_name(previous)}")
        root.query(f"DROP DATABASE IF EXISTS {quote_name(scratch)}")
    except BackupError as exc:
        return (f"ROLLBACK FAILED ({exc}): the live database {live} may be incomplete; its "
                f"tables may be in {previous}; restore the safety backup")
    return f"rolled back: {live} is as it was before the restore"


# --------------------------------------------------------------------------
# Command line


def format_list(rows: list[dict[str, Any]]) -> str:
    """The table printed by ``list``."""
    header = ("ID", "KIND", "TIME (UTC)", "SIZE", "TABLES", "ROWS", "STATUS")
    lines = [header]
    for r in rows:
        status = "verified" if r["ok"] else "BAD: " + "; ".join(r["problems"])[:120]
        lines.append((r["id"], r.get("kind") or "?", (r.get("time") or "?").replace("T", " "),
                      human_size(r["compressed_bytes"]) if r.get("compressed_bytes") else "?",
                      str(r.get("tables", "?")), str(r.get("rows", "?")), status))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True))
                     + "  " + line[-1] for line in lines)


def _emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
    elif text is not None:
        print(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ocpizza-backup", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help=f"settings file (default {DEFAULT_CONFIG})")
    parser.add_argument("--dir", help="backup directory (overrides the settings file)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backup", help="take one backup now")
    p.add_argument("--kind", choices=KINDS, default="manual")
    p.add_argument("--json", action="store_true")
    sub.add_parser("run", help="the scheduled job: backup, then prune")
    p = sub.add_parser("verify", help="check a backup against its manifest")
    p.add_argument("backup")
    p.add_argument("--quick", action="store_true", help="size and sha256 only")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("list", help="list the backups and whether each verifies")
    p.add_argument("--full", action="store_true", help="decompress every backup to verify it")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("prune", help="apply the retention policy")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--keep-daily", type=int)
    p.add_argument("--keep-weekly", type=int)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("checkin", help="ping the monitoring URL")
    p.add_argument("result", nargs="?", choices=("success", "fail", "auto"), default="auto")
    p = sub.add_parser("restore-load", help="load a backup into a scratch database and check it")
    p.add_argument("backup")
    p.add_argument("--scratch", required=True)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("restore-switch", help="put a checked scratch database in place")
    p.add_argument("backup")
    p.add_argument("--scratch", required=True)
    p.add_argument("--previous", required=True)
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.umask(0o077)  # backups hold the whole database: root only
    try:
        cfg = Config.load(args.config)
        if args.dir:
            cfg.dir = Path(args.dir)
        return _dispatch(cfg, args)
    except UnknownBackup as exc:
        log(str(exc), "err")
        _emit({"ok": False, "unknown": True, "problems": [str(exc)],
               "available": list_ids(cfg.dir) if "cfg" in locals() else []},
              getattr(args, "json", False))
        return 2
    except BackupError as exc:
        log(str(exc), "err")
        _emit({"ok": False, "problems": [str(exc)]}, getattr(args, "json", False))
        return 1


def _dispatch(cfg: Config, args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "backup":
        result = backup(cfg, args.kind)
        _emit(result, args.json, result["id"])
        return 0
    if cmd == "run":
        try:
            backup(cfg, "scheduled")
        except BackupError as exc:
            log(f"scheduled backup FAILED: {exc}", "err")
            return 1
        with locked(cfg, "prune"):
            prune(cfg)
        return 0
    if cmd == "verify":
        check = verify(resolve(cfg.dir, args.backup), full=not args.quick)
        text = (f"{check.files.data}: OK ({'full' if check.full else 'quick'} verification)"
                if check.ok else "REFUSED: backup " + check.files.id + " is not usable:\n  "
                + "\n  ".join(check.problems))
        _emit(check.as_dict(), args.json, text)
        return 0 if check.ok else 1
    if cmd == "list":
        rows = [verify(backup_files(cfg.dir / i, i), full=args.full).as_dict()
                for i in list_ids(cfg.dir)]
        text = format_list(rows) if rows else f"no backups in {cfg.dir}"
        _emit(rows, args.json, text)
        return 0
    if cmd == "prune":
        if args.keep_daily is not None:
            cfg.keep_daily = args.keep_daily
        if args.keep_weekly is not None:
            cfg.keep_weekly = args.keep_weekly
        with locked(cfg, "prune"):
            result = prune(cfg, args.dry_run)
        _emit(result, args.json, "\n".join(f"prune {i}" for i in result["pruned"])
              or "nothing to prune")
        return 0
    if cmd == "checkin":
        if args.result == "auto":
            success = (os.environ.get("SERVICE_RESULT", "success") == "success"
                       and os.environ.get("EXIT_STATUS", "0") in ("0", ""))
        else:
            success = args.result == "success"
        checkin(cfg, success)
        return 0
    if cmd == "restore-load":
        result = restore_load(cfg, resolve(cfg.dir, args.backup), args.scratch)
        _emit(result, args.json, f"loaded into {result['scratch']}")
        return 0
    if cmd == "restore-switch":
        result = restore_switch(cfg, resolve(cfg.dir, args.backup), args.scratch, args.previous)
        _emit(result, args.json, f"restored {result['id']} into {result['database']}")
        return 0
    raise BackupError(f"unknown command {cmd}")  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
