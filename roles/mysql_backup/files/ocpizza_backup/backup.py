"""Taking a backup: dump, compress, describe, verify, publish atomically."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ocpizza_backup import TOOL_VERSION, BackupError
from ocpizza_backup.common import CHUNK, human_size, iso, log, pump, utc_now
from ocpizza_backup.config import Config
from ocpizza_backup.db import Mysql, quote_string, schema_objects
from ocpizza_backup.dumpscan import DumpScanner
from ocpizza_backup.manifest import MANIFEST_FORMAT, BackupFiles, backup_files
from ocpizza_backup.store import PARTIAL_PREFIX, clean_work_dirs, fsync_dir, locked
from ocpizza_backup.verify import sha256_file, verify

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


def backup(cfg: Config, kind: str = "manual") -> dict[str, Any]:
    """Dump cfg.database, compress, describe, verify, then publish atomically."""
    with locked(cfg, "backup"):
        clean_work_dirs(cfg)
        return _backup_locked(cfg, kind)


@dataclasses.dataclass
class _Dump:
    """What the dump pipeline produced."""

    scanner: DumpScanner
    compressor: str
    options: list[str]


def _run_dump(cfg: Config, options: list[str], data: Path) -> _Dump:
    """mysqldump | (scan) | pigz/gzip > data; raise on any failure."""
    dump_argv = ["mysqldump", f"--defaults-extra-file={cfg.defaults_file}", *options, cfg.database]
    scanner = DumpScanner()
    with tempfile.TemporaryFile() as dump_err, data.open("wb") as out:
        dump = subprocess.Popen(dump_argv, stdout=subprocess.PIPE, stderr=dump_err)
        compressor = cfg.compressor if shutil.which(cfg.compressor) else "gzip"
        gz = subprocess.Popen(
            [compressor, f"-{cfg.compress_level}", "-c"], stdin=subprocess.PIPE, stdout=out
        )
        assert dump.stdout is not None and gz.stdin is not None
        broken = pump(_scanned(dump.stdout, scanner), gz.stdin, dump)
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
        failure = f"{compressor} failed (status {gz_rc}{'; ' + str(broken) if broken else ''})"
    elif not scanner.completed:
        failure = "the dump is incomplete (no '-- Dump completed' line)"
    if failure:
        raise BackupError(f"backup of {cfg.database} failed: {failure}")
    if err_text:
        log(f"mysqldump said: {err_text[-500:]}", "warning")
    return _Dump(scanner, compressor, options)


def _scanned(stream: IO[bytes], scanner: DumpScanner) -> Iterator[bytes]:
    """The dump's chunks, each read by the scanner on the way."""
    while chunk := stream.read(CHUNK):
        scanner.feed(chunk)
        yield chunk


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
        f"WHERE SCHEMA_NAME={quote_string(cfg.database)}"
    )
    if not info:
        raise BackupError(
            f"database {cfg.database} does not exist (or the backup user cannot see it)"
        )
    hostname, version, log_bin, charset, collation = info[0]
    objects_before = schema_objects(user, cfg.database)
    options = list(MYSQLDUMP_OPTIONS)
    if log_bin == "1":
        options.append("--master-data=2")
    else:
        log("binary logging is off: the manifest records no binlog position", "warning")
    work = cfg.dir / f"{PARTIAL_PREFIX}{backup_id}"
    work.mkdir(mode=0o700)
    files = backup_files(work, backup_id)
    try:
        dump = _run_dump(cfg, options, files.data)
        objects_after = schema_objects(user, cfg.database)
        if objects_after != objects_before or set(dump.scanner.tables) != set(
            objects_after["tables"]
        ):
            raise BackupError(
                f"backup of {cfg.database} failed: the schema changed while it "
                "was dumped (a migration?); run the backup again"
            )
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
            "compressor": f"{dump.compressor} -{cfg.compress_level}",
            "started_at": iso(started),
            "finished_at": iso(finished),
            "duration_seconds": round((finished - started).total_seconds(), 3),
            "host": socket.getfqdn(),
            "server": {"hostname": hostname, "version": version},
            "binlog": (
                {
                    "file": dump.scanner.binlog_file,
                    "position": dump.scanner.binlog_position,
                    "gtid": dump.scanner.gtid,
                }
                if dump.scanner.binlog_file
                else None
            ),
            "mysqldump": {"options": options, "version": _mysqldump_version()},
            "dump_bytes": dump.scanner.bytes,
            "compressed_bytes": files.data.stat().st_size,
            "sha256": sha256_file(files.data),
            "tables": dict(sorted(dump.scanner.tables.items())),
            "views": objects_after["views"],
            "triggers": objects_after["triggers"],
            "routines": objects_after["routines"],
            "events": objects_after["events"],
        }
        _write_manifest(files, manifest)
        check = verify(files, full=True)
        if not check.ok:
            raise BackupError("the new backup does not verify: " + "; ".join(check.problems))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    fsync_dir(work)
    work.rename(final_dir)
    fsync_dir(cfg.dir)
    log(
        f"backup {backup_id} done: {len(manifest['tables'])} tables, "
        f"{sum(manifest['tables'].values())} rows, {human_size(manifest['dump_bytes'])} dumped, "
        f"{human_size(manifest['compressed_bytes'])} stored in {final_dir}"
    )
    result = verify(backup_files(final_dir, backup_id), full=False).as_dict()
    result["duration_seconds"] = manifest["duration_seconds"]
    return result


def _write_manifest(files: BackupFiles, manifest: dict[str, Any]) -> None:
    tmp_manifest = files.manifest.with_name(files.manifest.name + ".tmp")
    with tmp_manifest.open("w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp_manifest.rename(files.manifest)


def _mysqldump_version() -> str:
    with contextlib.suppress(OSError):
        proc = subprocess.run(
            ["mysqldump", "--version"], capture_output=True, text=True, check=False
        )
        return proc.stdout.strip()
    return "unknown"  # pragma: no cover
