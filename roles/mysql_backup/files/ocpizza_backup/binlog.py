"""The binary-log archive and point-in-time restores.

``archive`` flushes the server's binary log when it holds new events and
copies every closed binary log not archived yet into ``<dir>/binlog/``, with
a sidecar ``<file>.json`` (size, sha256, when it started, when it was
archived). ``plan`` says what a restore up to a point needs: the newest
backup before the point, and the archived binary logs from the backup's
recorded coordinates up to it, refusing a malformed or future point, a
point before the oldest backup and a gap in the chain (named). ``replay``
applies them to the scratch database a restore loads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import struct
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ocpizza_backup import BackupError
from ocpizza_backup.common import CHUNK, iso, log, parse_time, pump, utc_now
from ocpizza_backup.config import Config
from ocpizza_backup.db import Mysql, client_safety_options
from ocpizza_backup.manifest import backup_files, list_ids, read_manifest
from ocpizza_backup.store import BINLOG_DIR, fsync_dir

ARCHIVE_DIR = BINLOG_DIR
STATE = ".flushed.json"
# Where each restore's switch happened in the binary log: no replay crosses it.
RESTORES = "restores.json"
NAME_RE = re.compile(r"^(?P<base>[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\.(?P<seq>\d{6,})$")
UNTIL_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
POSITION_RE = re.compile(r"^(?P<file>[A-Za-z0-9_.-]+\.\d{6,}):(?P<pos>\d{1,19})$")


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a point-in-time restore stops: before a time (UTC), or at a position."""

    time: dt.datetime | None = None
    file: str | None = None
    position: int | None = None

    def describe(self) -> str:
        if self.time is not None:
            return self.time.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.file}:{self.position}"


def parse_until(value: str) -> dt.datetime:
    """'2026-11-29 14:03:00' or '2026-11-29T14:03:00' (UTC) -> an aware datetime."""
    text = value.strip().replace("T", " ", 1)
    try:
        if not UNTIL_RE.match(text):
            raise ValueError(text)
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        raise BackupError(
            f"refused: until must be a UTC time 'YYYY-MM-DD HH:MM:SS' (got '{value}'); "
            "nothing was changed"
        ) from None


def parse_position(value: str) -> tuple[str, int]:
    """'mysql-bin.000012:4567' -> ('mysql-bin.000012', 4567); a clear error otherwise."""
    match = POSITION_RE.match(value.strip())
    if not match:
        raise BackupError(
            f"refused: until_position must be <binlog file>:<position>, such as "
            f"mysql-bin.000012:4567 (got '{value}'); nothing was changed"
        )
    return match["file"], int(match["pos"])


def split_name(name: str) -> tuple[str, int]:
    """'mysql-bin.000012' -> ('mysql-bin', 12)."""
    match = NAME_RE.match(name)
    if not match:
        raise BackupError(f"'{name}' is not a binary log file name (<base>.<number>)")
    return match["base"], int(match["seq"])


def seq_name(base: str, seq: int, width: int = 6) -> str:
    return f"{base}.{seq:0{width}d}"


def chain_gaps(archived: list[str], first: str, last: str) -> list[str]:
    """The files between first and last (both included) missing from archived."""
    base, start = split_name(first)
    last_base, end = split_name(last)
    if last_base != base:
        raise BackupError(f"{first} and {last} are not of the same binary log ({base})")
    width = len(first) - len(base) - 1
    have = set(archived)
    return [
        seq_name(base, n, width)
        for n in range(start, end + 1)
        if seq_name(base, n, width) not in have
    ]


def archive_dir(cfg: Config) -> Path:
    return cfg.dir / ARCHIVE_DIR


def read_archive(cfg: Config) -> list[dict[str, Any]]:
    """The archived binary logs, oldest first (from their sidecars)."""
    root = archive_dir(cfg)
    if not root.is_dir():
        return []
    entries = []
    for side in root.glob("*.json"):
        if side.name.startswith(".") or side.name == RESTORES:
            continue
        try:
            entry = json.loads(side.read_text(encoding="utf-8"))
            split_name(entry["file"])
        except (OSError, ValueError, KeyError, TypeError, BackupError):
            log(f"{side}: not a binary-log sidecar, ignored", "warning")
            continue
        entries.append(entry)
    return sorted(entries, key=lambda e: split_name(e["file"])[1])


def _started_at(path: Path) -> int:
    """The timestamp of a binary log's first event (its format description)."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[:4] != b"\xfebin":
        raise BackupError(f"{path} is not a binary log (bad magic number)")
    return int(struct.unpack("<I", head[4:8])[0])


def _copy(source: Path, dest: Path) -> tuple[int, str]:
    """Copy source to dest atomically (through a temporary file); size and sha256."""
    hasher = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            for block in iter(lambda: src.read(CHUNK), b""):
                hasher.update(block)
                size += len(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size, hasher.hexdigest()


def archive(cfg: Config, root: Mysql | None = None) -> dict[str, Any]:
    """Flush the binary log if it holds new events, then archive every closed
    binary log newer than the newest archived one (lock held by the caller)."""
    db = root or Mysql()
    rows = db.query("SELECT @@log_bin, @@log_bin_basename")
    if not rows or rows[0][0] != "1":
        raise BackupError("binary logging is off on this server: nothing to archive")
    datadir = Path(rows[0][1]).parent
    target = archive_dir(cfg)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_file = target / STATE
    status = db.query("SHOW MASTER STATUS")
    current = [status[0][0], status[0][1]] if status else None
    state = read_state(cfg)
    if state is None or current != [state.get("file"), state.get("position")]:
        db.query("FLUSH BINARY LOGS")
        status = db.query("SHOW MASTER STATUS")
    # The active binary log holds no event past this position at this time:
    # the archive is complete up to checked_at.
    state_file.with_suffix(".tmp").write_text(
        json.dumps({"file": status[0][0], "position": status[0][1], "checked_at": iso(utc_now())})
        + "\n",
        encoding="utf-8",
    )
    state_file.with_suffix(".tmp").replace(state_file)
    logs = [row[0] for row in db.query("SHOW BINARY LOGS")]
    closed = logs[:-1]
    done = read_archive(cfg)
    newest = split_name(done[-1]["file"])[1] if done else -1
    added = []
    for name in closed:
        if split_name(name)[1] <= newest:
            continue
        size, digest = _copy(datadir / name, target / name)
        entry = {
            "file": name,
            "bytes": size,
            "sha256": digest,
            "started_at": iso(dt.datetime.fromtimestamp(_started_at(target / name), dt.UTC)),
            "archived_at": iso(utc_now()),
        }
        side = target / f"{name}.json"
        side.with_suffix(".tmp").write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
        side.with_suffix(".tmp").replace(side)
        added.append(entry)
    fsync_dir(target)
    for entry in added:
        log(f"archived binary log {entry['file']} ({entry['bytes']} bytes)")
    return {"added": [e["file"] for e in added], "newest": newest_point(cfg)}


def read_state(cfg: Config) -> dict[str, Any] | None:
    """What the last archive run saw: the active binary log, its position, when."""
    path = archive_dir(cfg) / STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def newest_point(
    cfg: Config, archived: list[dict[str, Any]] | None = None
) -> dict[str, Any] | None:
    """The newest restore point the archive holds: the end of its newest file,
    and the time up to which it is complete (the last run that found no event
    left to archive in the binary log that follows it)."""
    archived = read_archive(cfg) if archived is None else archived
    if not archived:
        return None
    last = archived[-1]
    point = {"file": last["file"], "position": last["bytes"], "time": last["archived_at"]}
    state = read_state(cfg)
    base, seq = split_name(last["file"])
    width = len(last["file"]) - len(base) - 1
    if state and state.get("file") == seq_name(base, seq + 1, width) and state.get("checked_at"):
        point["time"] = max(point["time"], str(state["checked_at"]))
    return point


def prune_archive(cfg: Config, keep_from: str | None, dry_run: bool = False) -> list[str]:
    """Remove the archived binary logs older than keep_from (the binary log of the
    oldest backup kept): no restore can start before it."""
    if keep_from is None:
        return []
    _, first = split_name(keep_from)
    removed = []
    for entry in read_archive(cfg):
        if split_name(entry["file"])[1] < first:
            removed.append(entry["file"])
            if not dry_run:
                (archive_dir(cfg) / entry["file"]).unlink(missing_ok=True)
                (archive_dir(cfg) / f"{entry['file']}.json").unlink(missing_ok=True)
    return removed


def read_restores(cfg: Config) -> list[dict[str, Any]]:
    """The restores switched in on this host: time and binary-log position."""
    path = archive_dir(cfg) / RESTORES
    if not path.exists():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")))


def record_restore(cfg: Config, root: Mysql) -> None:
    """Remember where a restore switched the database (called by restore-switch)."""
    status = root.query("SHOW MASTER STATUS")
    if not status:
        return
    entries = read_restores(cfg)
    entries.append({"time": iso(utc_now()), "file": status[0][0], "position": int(status[0][1])})
    archive_dir(cfg).mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = archive_dir(cfg) / f".{RESTORES}.tmp"
    tmp.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    tmp.replace(archive_dir(cfg) / RESTORES)


def _backups(cfg: Config) -> list[dict[str, Any]]:
    """Manifests of the local backups that record binary-log coordinates."""
    found = []
    for backup_id in list_ids(cfg.dir):
        manifest, problems = read_manifest(backup_files(cfg.dir / backup_id, backup_id))
        if manifest and not problems and manifest.get("binlog"):
            found.append(manifest)
    return found


def oldest_needed(cfg: Config) -> str | None:
    """The binary log of the oldest backup (pruning keeps it and every newer one)."""
    found = _backups(cfg)
    if not found:
        return None
    return min((m["binlog"]["file"] for m in found), key=lambda f: split_name(f)[1])


def _coords(manifest: dict[str, Any]) -> tuple[int, int]:
    return split_name(manifest["binlog"]["file"])[1], int(manifest["binlog"]["position"])


def check_not_future(target: Target, now: dt.datetime | None = None) -> None:
    """Refuse a point in the future (there is nothing to replay up to it yet)."""
    now = now or utc_now()
    if target.time is not None and target.time > now:
        raise BackupError(
            f"refused: {target.describe()} is in the future (now {iso(now)}); nothing was changed"
        )


def plan(cfg: Config, target: Target, now: dt.datetime | None = None) -> dict[str, Any]:
    """The backup and the archived binary logs a restore up to target needs; a
    BackupError (nothing changed) for a point in the future, before the oldest
    backup, past the archive, or across a gap of the chain."""
    now = now or utc_now()
    backups = _backups(cfg)
    if not backups:
        raise BackupError(f"refused: no backup with binary-log coordinates in {cfg.dir}")
    archived = read_archive(cfg)
    check_not_future(target, now)
    if target.time is not None:
        before = [m for m in backups if parse_time(m["finished_at"]) <= target.time]
    else:
        assert target.file is not None and target.position is not None
        point = (split_name(target.file)[1], target.position)
        before = [m for m in backups if _coords(m) <= point]
    if not before:
        oldest = min(backups, key=lambda m: m["finished_at"])
        raise BackupError(
            f"refused: {target.describe()} is before the oldest backup ({oldest['id']}, "
            f"finished {oldest['finished_at']}, at {oldest['binlog']['file']}:"
            f"{oldest['binlog']['position']}); nothing was changed"
        )
    chosen = max(before, key=_coords)
    for done in read_restores(cfg):
        at = (split_name(done["file"])[1], int(done["position"]))
        crossed = at > _coords(chosen) and (
            parse_time(done["time"]) < target.time
            if target.time is not None
            else at <= (split_name(str(target.file))[1], int(target.position or 0))
        )
        if crossed:
            raise BackupError(
                f"refused: a restore was switched in at {done['time']} ({done['file']}:"
                f"{done['position']}), between backup {chosen['id']} and {target.describe()}; "
                "the binary logs cannot be replayed across it: choose a point before it, or "
                "after the first backup taken after it; nothing was changed"
            )
    first = chosen["binlog"]["file"]
    names = [e["file"] for e in archived]
    by_name = {e["file"]: e for e in archived}
    if target.time is not None:
        newest = newest_point(cfg, archived)
        if newest is None or parse_time(newest["time"]) < target.time:
            raise BackupError(
                f"refused: the binary-log archive ends at "
                f"{newest['time'] if newest else 'nothing'}, before {target.describe()}; "
                "nothing was changed"
            )
        # Every file that started before the point (the last one may end after it).
        last = first
        for entry in archived:
            if split_name(entry["file"])[1] >= split_name(first)[1] and (
                parse_time(entry["started_at"]) < target.time
            ):
                last = entry["file"]
    else:
        last = str(target.file)
        if last not in by_name and split_name(last)[1] > max(
            (split_name(n)[1] for n in names), default=-1
        ):
            raise BackupError(
                f"refused: {last} is not in the binary-log archive yet (it ends at "
                f"{names[-1] if names else 'nothing'}); nothing was changed"
            )
    gaps = chain_gaps(names, first, last)
    if gaps:
        raise BackupError(
            f"refused: gap in the binary-log chain from backup {chosen['id']} "
            f"({first}:{chosen['binlog']['position']}) to {target.describe()}: "
            f"{', '.join(gaps)} missing from {archive_dir(cfg)}; nothing was changed"
        )
    files = [n for n in names if split_name(first)[1] <= split_name(n)[1] <= split_name(last)[1]]
    if target.position is not None and target.position > by_name[last]["bytes"]:
        raise BackupError(
            f"refused: {last} holds {by_name[last]['bytes']} bytes, position "
            f"{target.position} is past its end; nothing was changed"
        )
    return {
        "backup": chosen["id"],
        "start": {"file": first, "position": int(chosen["binlog"]["position"])},
        "files": files,
        "until": target.describe(),
    }


def check_files(cfg: Config, files: list[str]) -> None:
    """Each archived file still matches its recorded size and sha256."""
    by_name = {e["file"]: e for e in read_archive(cfg)}
    for name in files:
        path = archive_dir(cfg) / name
        if not path.exists():
            raise BackupError(f"refused: {path} is missing; nothing was changed")
        hasher = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                hasher.update(block)
        if hasher.hexdigest() != by_name[name]["sha256"]:
            raise BackupError(
                f"refused: archived binary log {name} does not match its checksum "
                "(corrupt or altered); nothing was changed"
            )


def replay_argv(cfg: Config, steps: dict[str, Any], target: Target, scratch: str) -> list[str]:
    """The mysqlbinlog command that prints the events of cfg.database from the
    backup's coordinates up to target, rewritten for the scratch database."""
    argv = [
        "mysqlbinlog",
        "--no-defaults",
        f"--start-position={steps['start']['position']}",
        # The filter applies to the name before the rewrite.
        f"--rewrite-db={cfg.database}->{scratch}",
        f"--database={cfg.database}",
    ]
    if target.time is not None:
        argv.append(f"--stop-datetime={target.time.strftime('%Y-%m-%d %H:%M:%S')}")
    else:
        argv.append(f"--stop-position={target.position}")
    return argv + [str(archive_dir(cfg) / name) for name in steps["files"]]


# mysqlbinlog's output sets each transaction's GTID sequence number: the
# replay must get new ones, or a GTID replica would take the scratch copy's
# writes for ones it already has.
GTID_SEQ_RE = re.compile(rb"^/\*M?!\d+ SET @@session\.gtid_seq_no=\d+\*/")


def without_gtid_seq(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The replay's statements, without the lines that reuse the original GTIDs."""
    for line in lines:
        if not GTID_SEQ_RE.match(line):
            yield line


def replay(cfg: Config, steps: dict[str, Any], target: Target, scratch: str, root: Mysql) -> None:
    """Apply the archived events to the scratch database (mysqlbinlog | mysql)."""
    check_files(cfg, steps["files"])
    env = dict(os.environ, TZ="UTC")
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as client_err:
        events = subprocess.Popen(
            replay_argv(cfg, steps, target, scratch), stdout=subprocess.PIPE, stderr=err, env=env
        )
        client = subprocess.Popen(
            [*root.argv(), "--batch", *client_safety_options(), scratch],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=client_err,
        )
        assert events.stdout is not None and client.stdin is not None
        broken = pump(without_gtid_seq(events.stdout), client.stdin, events)
        rc, client_rc = events.wait(), client.wait()
        err.seek(0)
        client_err.seek(0)
        message = err.read().decode("utf-8", "replace").strip()
        client_message = client_err.read().decode("utf-8", "replace").strip()
    if rc != 0:
        raise BackupError(f"mysqlbinlog failed (status {rc}): {message[-500:]}")
    if client_rc != 0 or broken is not None:
        raise BackupError(f"replaying the binary logs failed: {client_message[-500:] or broken}")
    log(f"replayed {', '.join(steps['files'])} into {scratch} up to {steps['until']}")
