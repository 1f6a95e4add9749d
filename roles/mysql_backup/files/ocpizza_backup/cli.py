"""The command line: ``ocpizza-backup <command>`` (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ocpizza_backup
from ocpizza_backup import BackupError, UnknownBackup
from ocpizza_backup.backup import KINDS, backup
from ocpizza_backup.binlog import (
    Target,
    archive,
    check_not_future,
    newest_point,
    oldest_needed,
    parse_position,
    parse_until,
    plan,
    prune_archive,
    read_archive,
)
from ocpizza_backup.checkin import checkin
from ocpizza_backup.common import human_size, log
from ocpizza_backup.config import DEFAULT_CONFIG, Config
from ocpizza_backup.drill import drill
from ocpizza_backup.manifest import backup_files, list_ids, resolve
from ocpizza_backup.offsite import LOCAL_ONLY_KINDS, fetch, list_remote, prune_remote, push, sync
from ocpizza_backup.offsite_binlog import push_binlogs
from ocpizza_backup.restore import restore_load, restore_switch
from ocpizza_backup.retention import prune
from ocpizza_backup.store import INCOMING_PREFIX, locked
from ocpizza_backup.verify import verify


def format_list(rows: list[dict[str, Any]]) -> str:
    """The table printed by ``list``."""
    header = ("ID", "KIND", "TIME (UTC)", "SIZE", "TABLES", "ROWS", "STATUS")
    lines = [header]
    for r in rows:
        status = "verified" if r["ok"] else "BAD: " + "; ".join(r["problems"])[:120]
        lines.append(
            (
                r["id"],
                r.get("kind") or "?",
                (r.get("time") or "?").replace("T", " "),
                human_size(r["compressed_bytes"]) if r.get("compressed_bytes") else "?",
                str(r.get("tables", "?")),
                str(r.get("rows", "?")),
                status,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )


def format_remote(rows: list[dict[str, Any]]) -> str:
    """The table printed by ``offsite-list``."""
    lines = [("ID", "KIND", "TIME (UTC)", "SIZE", "STATUS")]
    for r in rows:
        lines.append(
            (
                r["id"],
                r.get("kind") or "?",
                (r.get("time") or "?").replace("T", " "),
                human_size(r["bytes"]) if r.get("bytes") else "?",
                "complete (encrypted)" if r["ok"] else "BAD: " + "; ".join(r["problems"])[:120],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )


def format_archive(cfg: Config) -> str:
    """The line ``list`` prints about the binary-log archive."""
    archived = read_archive(cfg)
    newest = newest_point(cfg, archived)
    if newest is None:
        return "Binary-log archive: empty (no point-in-time restore yet)"
    return (
        f"Binary-log archive: {len(archived)} files, {archived[0]['file']} .. {newest['file']}; "
        f"newest position {newest['file']}:{newest['position']}; "
        f"complete up to {newest['time'].replace('T', ' ').rstrip('Z')} UTC "
        "(the newest restore point)"
    )


def target_of(args: argparse.Namespace) -> Target | None:
    """The point of a point-in-time restore given on the command line, if any."""
    if getattr(args, "until", None):
        return Target(time=parse_until(args.until))
    if getattr(args, "until_position", None):
        file, position = parse_position(args.until_position)
        return Target(file=file, position=position)
    return None


def _add_target(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--until", help="replay the binary logs up to this UTC time (excluded)")
    group.add_argument("--until-position", help="replay the binary logs up to <file>:<pos>")


def _emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
    elif text is not None:
        print(text)


def _parser() -> argparse.ArgumentParser:
    doc = ocpizza_backup.__doc__ or "ocpizza-backup"
    parser = argparse.ArgumentParser(prog="ocpizza-backup", description=doc.split("\n")[0])
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
    p = sub.add_parser("offsite-list", help="list the off-site copies and whether each is complete")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser(
        "offsite-fetch",
        help="download an off-site copy, check it, decrypt it with the identity read on stdin",
    )
    p.add_argument("backup")
    p.add_argument("--into", required=True, help=f"new directory <dir>/{INCOMING_PREFIX}*")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("binlog-archive", help="flush and archive the closed binary logs")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("pitr-plan", help="the backup and binary logs a restore up to a point needs")
    _add_target(p)
    p.add_argument("--archive", action="store_true", help="archive the binary logs first")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("checkin", help="ping the monitoring URL")
    p.add_argument("result", nargs="?", choices=("success", "fail", "auto"), default="auto")
    p = sub.add_parser(
        "drill",
        help="restore the newest backup and binary logs into a scratch database, check, drop it",
    )
    p.add_argument("--archive", action="store_true", help="archive the binary logs first")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser(
        "restore-load",
        help="load a backup into a scratch database, check it and record it for restore-switch",
    )
    p.add_argument("backup")
    p.add_argument("--scratch", required=True, help="database to load it into (new)")
    p.add_argument("--previous", required=True, help="database the live tables will move to")
    p.add_argument("--safety", help="id of the safety backup taken before (for the report)")
    _add_target(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("restore-switch", help="put the checked copy in place of the live one")
    p.add_argument("--drop-previous", action="store_true", help="drop the replaced tables")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.umask(0o077)  # backups hold the whole database: root only
    cfg: Config | None = None
    try:
        cfg = Config.load(args.config)
        if args.dir:
            cfg.dir = Path(args.dir)
        return _dispatch(cfg, args)
    except UnknownBackup as exc:
        log(str(exc), "err")
        _emit(
            {
                "ok": False,
                "unknown": True,
                "problems": [str(exc)],
                "available": list_ids(cfg.dir) if cfg else [],
            },
            getattr(args, "json", False),
        )
        return 2
    except BackupError as exc:
        log(str(exc), "err")
        _emit({"ok": False, "problems": [str(exc)]}, getattr(args, "json", False))
        return 1


def _offsite_fetch(cfg: Config, args: argparse.Namespace) -> int:
    """Download, check and decrypt an off-site copy into a new ``--into`` directory,
    with the identity read on stdin. The outcome also goes to
    ``<into>/offsite-fetch.json``: a caller that must hide this command's input
    (Ansible's no_log hides the output too) reads it there."""
    into = Path(args.into)
    if into.parent != cfg.dir or not into.name.startswith(INCOMING_PREFIX):
        raise BackupError(f"--into must be {cfg.dir}/{INCOMING_PREFIX}<name>")
    cfg.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    into.mkdir(mode=0o700)
    report = into / "offsite-fetch.json"
    rc = 0
    try:
        identity = sys.stdin.buffer.read(65536)
        if not identity.strip():
            raise BackupError("refused: no age identity on standard input; nothing was changed")
        with locked(cfg, "off-site fetch"):
            files = fetch(cfg, args.backup, identity, into)
        result: dict[str, Any] = {"ok": True, "id": files.id, "file": str(files.data)}
    except BackupError as exc:
        log(str(exc), "err")
        rc = 2 if isinstance(exc, UnknownBackup) else 1
        result = {"ok": False, "unknown": rc == 2, "problems": [str(exc)]}
        for leftover in into.iterdir():
            leftover.unlink()
    report.write_text(json.dumps(result) + "\n", encoding="utf-8")
    _emit(result, args.json, result.get("file") or "; ".join(result["problems"]))
    return rc


def _dispatch(cfg: Config, args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "backup":
        result = backup(cfg, args.kind)
        if cfg.offsite and args.kind not in LOCAL_ONLY_KINDS:
            try:
                with locked(cfg, "off-site copy"):
                    index = push(cfg, backup_files(cfg.dir / result["id"], result["id"]))
                result["offsite"] = index["objects"]
            except BackupError as exc:
                kept = f"the local backup {result['id']} is kept"
                result.update(ok=False, problems=[f"off-site copy FAILED: {exc} ({kept})"])
                log(f"off-site copy FAILED: {exc} ({kept})", "err")
                _emit(result, args.json)
                return 1
        _emit(result, args.json, result["id"])
    elif cmd == "run":
        try:
            backup(cfg, "scheduled")
        except BackupError as exc:
            log(f"scheduled backup FAILED: {exc}", "err")
            return 1
        with locked(cfg, "prune"):
            prune(cfg)
            prune_archive(cfg, oldest_needed(cfg))
            if cfg.offsite:
                try:
                    sync(cfg, [backup_files(cfg.dir / i, i) for i in list_ids(cfg.dir)])
                except BackupError as exc:
                    log(f"off-site copy FAILED: {exc} (the local backups are kept)", "err")
                    return 1
    elif cmd == "verify":
        check = verify(resolve(cfg.dir, args.backup), full=not args.quick)
        text = (
            f"{check.files.data}: OK ({'full' if check.full else 'quick'} verification)"
            if check.ok
            else "REFUSED: backup "
            + check.files.id
            + " is not usable:\n  "
            + "\n  ".join(check.problems)
        )
        _emit(check.as_dict(), args.json, text)
        return 0 if check.ok else 1
    elif cmd == "list":
        rows = [
            verify(backup_files(cfg.dir / i, i), full=args.full).as_dict()
            for i in list_ids(cfg.dir)
        ]
        text = format_list(rows) if rows else f"no backups in {cfg.dir}"
        _emit(rows, args.json, text + "\n" + format_archive(cfg))
    elif cmd == "prune":
        if args.keep_daily is not None:
            cfg.keep_daily = args.keep_daily
        if args.keep_weekly is not None:
            cfg.keep_weekly = args.keep_weekly
        with locked(cfg, "prune"):
            result = prune(cfg, args.dry_run)
            result["binlogs_pruned"] = prune_archive(cfg, oldest_needed(cfg), args.dry_run)
            if cfg.offsite:
                result["offsite_pruned"] = prune_remote(cfg, dry_run=args.dry_run)
        _emit(
            result,
            args.json,
            "\n".join(
                [f"prune {i}" for i in result["pruned"]]
                + [f"prune binary log {i}" for i in result["binlogs_pruned"]]
                + [f"prune off-site {i}" for i in result.get("offsite_pruned", [])]
            )
            or "nothing to prune",
        )
    elif cmd == "offsite-list":
        rows = list_remote(cfg)
        _emit(rows, args.json, format_remote(rows) if rows else "no off-site copies")
    elif cmd == "offsite-fetch":
        return _offsite_fetch(cfg, args)
    elif cmd == "checkin":
        if args.result == "auto":
            success = os.environ.get("SERVICE_RESULT", "success") == "success" and os.environ.get(
                "EXIT_STATUS", "0"
            ) in ("0", "")
        else:
            success = args.result == "success"
        checkin(cfg, success)
    elif cmd == "drill":
        if args.archive:
            with locked(cfg, "binary-log archive"):
                archive(cfg)
        result = drill(cfg)
        _emit(
            result,
            args.json,
            f"restore drill OK: backup {result['backup']}"
            + (f" and binary logs up to {result['until']}" if result["until"] else "")
            + f" restored and checked in {result['recovery_seconds']} s; newest restored data "
            f"from {result['data_time']} ({result['data_age_seconds']} s old)",
        )
    elif cmd == "binlog-archive":
        with locked(cfg, "binary-log archive"):
            result = archive(cfg)
            if cfg.offsite:
                try:
                    result["offsite"] = push_binlogs(cfg, oldest_needed(cfg))
                except BackupError as exc:
                    log(f"off-site copy of the binary logs FAILED: {exc} (kept locally)", "err")
                    _emit({**result, "ok": False, "problems": [str(exc)]}, args.json)
                    return 1
        newest = result["newest"]
        _emit(
            result,
            args.json,
            f"archived up to {newest['file']}:{newest['position']}"
            if newest
            else "nothing archived",
        )
    elif cmd == "pitr-plan":
        target = target_of(args)
        if target is None:
            raise BackupError("pitr-plan needs --until or --until-position")
        check_not_future(target)
        with locked(cfg, "point-in-time plan"):
            if args.archive:
                archive(cfg)
            result = plan(cfg, target)
        _emit(result, args.json, f"backup {result['backup']}, then {' '.join(result['files'])}")
    elif cmd == "restore-load":
        result = restore_load(
            cfg,
            resolve(cfg.dir, args.backup),
            args.scratch,
            args.previous,
            args.safety,
            target_of(args),
        )
        _emit(result, args.json, f"loaded into {result['scratch']}")
    elif cmd == "restore-switch":
        result = restore_switch(cfg, args.drop_previous)
        _emit(result, args.json, f"restored {result['id']} into {result['database']}")
    return 0
