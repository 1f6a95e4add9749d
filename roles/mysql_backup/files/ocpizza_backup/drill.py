"""Restore drill: prove that the newest backup, and the archived binary logs
after it, restore - without touching the live database.

The drill loads the newest backup into a scratch database through the same
path as a restore (a root-only copy checked against the manifest's sha256,
the client's own commands off), checks every table and exact row count and
every other object against the manifest, replays the archived binary logs up
to the archive's newest position, then drops the scratch database whatever
happened. Its report (recovery time, age of the newest restored data, or
what failed) is kept in ``<dir>/.drill-last.json``; a failure is a non-zero
exit, which the monthly unit turns into a check-in to ``<url>/fail`` (the
mechanism of failed backups).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

from ocpizza_backup import BackupError
from ocpizza_backup.binlog import Target, newest_point, plan, replay
from ocpizza_backup.common import iso, log, parse_time, utc_now
from ocpizza_backup.config import Config
from ocpizza_backup.db import Mysql, database_exists, exact_counts, quote_name, schema_objects
from ocpizza_backup.manifest import backup_files, list_ids, usable_manifest
from ocpizza_backup.restore import _load, check_database, new_database, verified_copy
from ocpizza_backup.store import locked

REPORT = ".drill-last.json"
SCRATCH_PREFIX = "ocpizza_drill_"


def drill_target(newest: dict[str, Any] | None) -> Target | None:
    """The archive's newest position (``newest_point``), when the archive holds
    one: the newest point a restore can reach today."""
    if newest is None:
        return None
    return Target(file=str(newest["file"]), position=int(newest["position"]))


def write_report(cfg: Config, report: dict[str, Any]) -> None:
    """Keep the drill's outcome (root only, replaced atomically)."""
    path = cfg.dir / REPORT
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def drill(cfg: Config) -> dict[str, Any]:
    """Restore the newest backup (plus the archived binary logs) into a scratch
    database, check it, drop it; the report. A BackupError if any step fails
    (the report then says which, and is kept too)."""
    started = time.monotonic()
    report: dict[str, Any] = {"ok": False, "started_at": iso(utc_now())}
    try:
        result = _drill(cfg)
        report.update(result, ok=True)
        return report
    except BackupError as exc:
        report["problems"] = [str(exc)]
        raise
    finally:
        report["recovery_seconds"] = round(time.monotonic() - started, 1)
        report["finished_at"] = iso(utc_now())
        with contextlib.suppress(OSError):
            write_report(cfg, report)


def _drill(cfg: Config) -> dict[str, Any]:
    ids = list_ids(cfg.dir)
    if not ids:
        raise BackupError(f"drill FAILED: no backup in {cfg.dir}")
    # Read once: the point replayed to is the one the report dates.
    newest = newest_point(cfg)
    target = drill_target(newest)
    steps = None
    if target is not None:
        try:
            steps = plan(cfg, target)
        except BackupError as exc:
            # The backup alone when the archive began after it, or when a
            # restore was switched in since (the chain cannot be replayed
            # across it until the next backup); a gap in the chain, or an
            # archived file that changed, is a failure.
            if not any(
                why in str(exc) for why in ("before the oldest backup", "a restore was switched in")
            ):
                raise
    if steps is None or steps["backup"] != ids[-1]:
        # The archive ends before the newest backup: that backup alone is newer.
        steps, target = None, None
    chosen = ids[-1]
    files = backup_files(cfg.dir / chosen, chosen)
    with locked(cfg, "restore drill"):
        manifest = usable_manifest(files)
        root = Mysql()
        scratch = SCRATCH_PREFIX + utc_now().strftime("%Y%m%dT%H%M%SZ")
        if database_exists(root, scratch):
            raise BackupError(f"drill FAILED: database {scratch} already exists")
        try:
            with verified_copy(cfg, files, manifest) as data:
                new_database(root, scratch, manifest)
                _load(files, data, manifest, root, scratch)
            problems = check_database(root, scratch, manifest)
            if problems:
                raise BackupError(
                    f"drill FAILED: backup {files.id} does not restore as its manifest says: "
                    + "; ".join(problems)
                )
            if steps and target:
                replay(cfg, steps, target, scratch, root)
            tables = exact_counts(root, scratch, schema_objects(root, scratch)["tables"])
        finally:
            with contextlib.suppress(BackupError):
                root.query(f"DROP DATABASE IF EXISTS {quote_name(scratch)}")
    data_time = str(newest["time"]) if steps and newest else str(manifest["finished_at"])
    age = (utc_now() - parse_time(data_time)).total_seconds()
    log(
        f"restore drill OK: backup {files.id}"
        + (f" and binary logs up to {steps['until']}" if steps else "")
        + f" restored into {scratch} and checked ({len(tables)} tables, "
        f"{sum(tables.values())} rows); newest restored data from {data_time} "
        f"({age / 60:.0f} min old); {scratch} dropped"
    )
    return {
        "backup": files.id,
        "backup_time": manifest["finished_at"],
        "binlogs": steps["files"] if steps else [],
        "until": steps["until"] if steps else None,
        "data_time": data_time,
        "data_age_seconds": round(age),
        "tables": len(tables),
        "rows": sum(tables.values()),
        "scratch": scratch,
    }
