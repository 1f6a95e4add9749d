"""Restore: load a backup into a scratch database and check it, then switch it in.

The two steps run at different times (an orchestrator stops the app servers
in between), so ``restore-load`` records the checked copy in
``<dir>/.restore-pending.json`` and ``restore-switch`` takes it from there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ocpizza_backup import BackupError
from ocpizza_backup.binlog import Target, check_files, plan, record_restore, replay
from ocpizza_backup.common import CHUNK, iso, log, utc_now
from ocpizza_backup.config import Config
from ocpizza_backup.db import (
    OBJECT_KINDS,
    Mysql,
    client_safety_options,
    database_exists,
    exact_counts,
    quote_name,
    schema_objects,
)
from ocpizza_backup.dumpscan import DumpScanner
from ocpizza_backup.manifest import BackupFiles, usable_manifest
from ocpizza_backup.store import VERIFIED_PREFIX, locked, remove_upload
from ocpizza_backup.switch import switch_tables
from ocpizza_backup.verify import compare_tables, gunzip_chunks

PENDING = ".restore-pending.json"


def new_database(root: Mysql, name: str, manifest: dict[str, Any]) -> None:
    """Create a database with the backup's character set and collation."""
    charset = manifest.get("charset") or "utf8mb4"
    collation = manifest.get("collation") or "utf8mb4_unicode_ci"
    if not re.match(r"^[A-Za-z0-9_]+$", charset + collation):
        raise BackupError(f"manifest charset/collation look wrong: {charset} {collation}")
    root.query(f"CREATE DATABASE {quote_name(name)} CHARACTER SET {charset} COLLATE {collation}")


def check_database(
    root: Mysql, database: str, manifest: dict[str, Any], counts: bool = True
) -> list[str]:
    """Differences between a database and a manifest (tables, rows, other objects)."""
    objects = schema_objects(root, database)
    if counts:
        actual = exact_counts(root, database, objects["tables"])
        problems = compare_tables(manifest["tables"], actual, database)
    else:
        problems = compare_tables(
            {t: 0 for t in manifest["tables"]}, {t: 0 for t in objects["tables"]}, database
        )
    for kind in OBJECT_KINDS:
        if kind in manifest and sorted(manifest[kind]) != objects[kind]:
            problems.append(
                f"{database}: {kind} are {objects[kind] or 'none'}, manifest says "
                f"{sorted(manifest[kind]) or 'none'}"
            )
    return problems


def _summary(files: BackupFiles, manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": files.id,
        "tables": manifest["tables"],
        "rows": sum(manifest["tables"].values()),
        "time": manifest["finished_at"],
        "objects": {k: manifest.get(k, []) for k in OBJECT_KINDS},
    }


def _drop_stale(cfg: Config, root: Mysql) -> None:
    """Forget a checked copy an unfinished restore left (its scratch database too)."""
    pending = cfg.dir / PENDING
    if not pending.exists():
        return
    with contextlib.suppress(OSError, ValueError, KeyError):
        scratch = json.loads(pending.read_text(encoding="utf-8"))["scratch"]
        root.query(f"DROP DATABASE IF EXISTS {quote_name(scratch)}")
        log(f"dropped {scratch}, left by an unfinished restore", "warning")
    pending.unlink()


@contextlib.contextmanager
def verified_copy(cfg: Config, files: BackupFiles, manifest: dict[str, Any]) -> Iterator[Path]:
    """A root-only copy of the backup's data file whose sha256 matches the manifest.

    The file is read once, without following a symbolic link, into a private
    directory of the backup directory (0700, the file 0600); the load reads
    that copy only, so a file swapped in after the check is never loaded. The
    copy is removed on the way out.
    """
    work = Path(tempfile.mkdtemp(prefix=VERIFIED_PREFIX, dir=cfg.dir))
    try:
        copy = work / files.data.name
        hasher = hashlib.sha256()
        try:
            fd = os.open(files.data, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise BackupError(
                f"refused: {files.data} cannot be read as a regular file ({exc.strerror}); "
                "nothing was loaded"
            ) from None
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                raise BackupError(f"refused: {files.data} is not a regular file")
            out_fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(out_fd, "wb") as dst:
                for block in iter(lambda: src.read(CHUNK), b""):
                    hasher.update(block)
                    dst.write(block)
        if hasher.hexdigest() != manifest["sha256"]:
            raise BackupError(
                f"refused: {files.data} does not match its manifest (sha256 "
                f"{hasher.hexdigest()[:12]}..., the manifest says {manifest['sha256'][:12]}...); "
                "nothing was loaded"
            )
        yield copy
    finally:
        shutil.rmtree(work, ignore_errors=True)


def restore_load(
    cfg: Config,
    files: BackupFiles,
    scratch: str,
    previous: str,
    safety: str | None = None,
    target: Target | None = None,
) -> dict[str, Any]:
    """Load the backup into a new scratch database, then check tables, exact row
    counts and objects against the manifest, and record it for restore-switch.
    With a target (point-in-time restore), the archived binary logs are then
    replayed into the scratch copy up to it, and the switch checks the copy
    against what the replay left. The live database is not touched; on any
    problem the scratch copy is dropped."""
    with locked(cfg, "restore"):
        manifest = usable_manifest(files)
        steps = plan(cfg, target) if target else None
        if steps:
            if steps["backup"] != files.id:
                raise BackupError(
                    f"refused: a restore up to {steps['until']} starts from backup "
                    f"{steps['backup']}, not {files.id}; nothing was changed"
                )
            check_files(cfg, steps["files"])
        root = Mysql()
        _drop_stale(cfg, root)
        if database_exists(root, scratch):
            raise BackupError(f"refused: database {scratch} already exists")
        expected: dict[str, Any] | None = None
        with verified_copy(cfg, files, manifest) as data:
            new_database(root, scratch, manifest)
            try:
                _load(files, data, manifest, root, scratch)
                problems = check_database(root, scratch, manifest)
                if problems:
                    raise BackupError(
                        "the restored copy does not match the manifest: " + "; ".join(problems)
                    )
                if steps and target:
                    replay(cfg, steps, target, scratch, root)
                    objects = schema_objects(root, scratch)
                    expected = {
                        "tables": exact_counts(root, scratch, objects["tables"]),
                        **{k: objects[k] for k in OBJECT_KINDS},
                    }
            except BaseException:
                with contextlib.suppress(BackupError):
                    root.query(f"DROP DATABASE IF EXISTS {quote_name(scratch)}")
                raise
        record = {
            "id": files.id,
            "directory": str(files.directory),
            "data": str(files.data),
            "manifest": str(files.manifest),
            "scratch": scratch,
            "previous": previous,
            "safety": safety or None,
            "loaded_at": iso(utc_now()),
            "until": steps["until"] if steps else None,
            "expected": expected,
        }
        (cfg.dir / PENDING).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(
        f"backup {files.id} loaded into {scratch}: {len(manifest['tables'])} tables and their "
        "exact row counts match the manifest"
        + (f"; binary logs replayed up to {steps['until']}" if steps else "")
    )
    return {
        **_summary(files, {**manifest, **(expected or {})}),
        "until": steps["until"] if steps else None,
        "binlogs": steps["files"] if steps else [],
        "scratch": scratch,
        "previous": previous,
        "safety": safety or None,
    }


def _load(
    files: BackupFiles, data: Path, manifest: dict[str, Any], root: Mysql, database: str
) -> None:
    """Stream the verified copy ``data`` of the dump into a database, checking its
    sha256 and content on the way. SQL only: the client's own commands are off."""
    hasher = hashlib.sha256()
    scanner = DumpScanner()
    argv = [
        *root.argv(),
        "--batch",
        "--default-character-set=utf8mb4",
        *client_safety_options(),
        database,
    ]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        failure = None
        try:
            with data.open("rb") as fh:
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
        raise BackupError(
            f"{files.data}: content does not match the manifest " + "; ".join(content)
        )


def restore_switch(cfg: Config, drop_previous: bool = False) -> dict[str, Any]:
    """Put the copy restore-load checked in place of the live database.

    The live tables move to the recorded ``previous`` database and the
    scratch tables into the live one (switch.switch_tables); if any step
    fails, the live database is put back as it was. ``drop_previous`` drops
    the replaced tables once the switch succeeded.
    """
    live = cfg.database
    with locked(cfg, "restore"):
        pending = cfg.dir / PENDING
        if not pending.exists():
            raise BackupError(
                f"refused: no checked copy is waiting to be switched in ({pending} "
                "is missing): run restore-load first"
            )
        record = json.loads(pending.read_text(encoding="utf-8"))
        files = BackupFiles(
            record["id"], Path(record["directory"]), Path(record["data"]), Path(record["manifest"])
        )
        scratch, previous = record["scratch"], record["previous"]
        # After a point-in-time replay, the copy is what the replay left.
        manifest = {**usable_manifest(files), **(record.get("expected") or {})}
        root = Mysql()
        if not database_exists(root, scratch):
            raise BackupError(f"refused: scratch database {scratch} does not exist")
        problems = check_database(root, scratch, manifest, counts=False)
        if problems:
            raise BackupError("refused: " + "; ".join(problems))
        live_exists = database_exists(root, live)
        if live_exists and database_exists(root, previous):
            raise BackupError(f"refused: database {previous} already exists")
        pending.unlink()
        switch_tables(
            root,
            live,
            scratch,
            previous if live_exists else None,
            lambda name: new_database(root, name, manifest),
            lambda name: check_database(root, name, manifest, counts=False),
        )
        root.query(f"DROP DATABASE {quote_name(scratch)}")
        try:
            record_restore(cfg, root)
        except (BackupError, OSError, ValueError) as exc:
            log(f"could not record the restore in the binary-log archive: {exc}", "warning")
        if drop_previous and live_exists:
            root.query(f"DROP DATABASE IF EXISTS {quote_name(previous)}")
        remove_upload(cfg, files.directory)
    kept = previous if live_exists and not drop_previous else None
    log(
        f"restored backup {files.id} into {live}"
        + (f"; the tables it replaced are in {kept}" if kept else "")
    )
    return {
        **_summary(files, manifest),
        "database": live,
        "previous": kept,
        "safety": record.get("safety"),
        "until": record.get("until"),
    }
