"""Off-site copies: encrypted with age on this host, kept in S3-compatible storage.

For each backup ``<id>``, under ``<prefix>/<id>/`` in the bucket:

* ``<id>.sql.gz.age``: the backup, encrypted with ``age`` to the public keys
  of the recipients file (the private keys are never on the servers);
* ``<id>.manifest.json.age``: its manifest, encrypted too (it names the
  tables, their row counts and the servers: nothing about the data leaves
  the host in clear);
* ``<id>.offsite.json``, uploaded last, in clear: id, kind, time, and the
  size, sha256 and ETag of both encrypted objects. Listing, retention and the
  check of a download before decryption need it, and nothing else; an id
  without it is an unfinished upload.

A restore downloads both encrypted objects, checks their sizes and sha256
against the index (a truncated or corrupt object is refused before
decryption), decrypts them with an identity read from standard input (passed
to age through a pipe, never written to disk) and hands the plain backup to
the usual verify and restore path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ocpizza_backup import TOOL_VERSION, BackupError, UnknownBackup
from ocpizza_backup.common import iso, log, parse_time, utc_now
from ocpizza_backup.config import Config
from ocpizza_backup.manifest import ID_RE, STAMP_RE, BackupFiles, read_manifest
from ocpizza_backup.retention import RetentionEntry, plan_retention
from ocpizza_backup.s3store import MIB, Store, read_credentials
from ocpizza_backup.store import OFFSITE_PREFIX
from ocpizza_backup.verify import sha256_file

INDEX_FORMAT = 1
AGE_HEADER = b"age-encryption.org/v1\n"
# Kinds that stay on the host: a restore's safety backup must not depend on
# the off-site storage being reachable.
LOCAL_ONLY_KINDS = ("pre-restore",)


def open_store(cfg: Config) -> Store:
    if not cfg.offsite:
        raise BackupError("off-site copies are off (no endpoint in the settings)")
    if not cfg.offsite_bucket:
        raise BackupError("off-site copies: no bucket in the settings")
    return Store(
        cfg.offsite_endpoint,
        cfg.offsite_region,
        cfg.offsite_bucket,
        read_credentials(cfg.offsite_credentials_file),
        cfg.offsite_part_mib * MIB,
    )


def remote_dir(cfg: Config, backup_id: str) -> str:
    """The key prefix of one backup's objects."""
    return f"{cfg.offsite_prefix}/{backup_id}/" if cfg.offsite_prefix else f"{backup_id}/"


def object_keys(cfg: Config, backup_id: str) -> dict[str, str]:
    base = remote_dir(cfg, backup_id) + backup_id
    return {
        "data": f"{base}.sql.gz.age",
        "manifest": f"{base}.manifest.json.age",
        "index": f"{base}.offsite.json",
    }


def remote_id(cfg: Config, key: str) -> str | None:
    """The backup id an object key belongs to, None for a foreign key."""
    root = f"{cfg.offsite_prefix}/" if cfg.offsite_prefix else ""
    if not key.startswith(root):
        return None
    parts = key[len(root) :].split("/")
    if len(parts) != 2 or not ID_RE.match(parts[0]) or not parts[1].startswith(parts[0] + "."):
        return None
    return parts[0]


def _age(argv: list[str], what: str, identity: bytes | None = None) -> None:
    """Run age; an identity goes through a pipe (/dev/fd), never through a file."""
    read_fd = -1
    try:
        if identity is not None:
            read_fd, write_fd = os.pipe()
            with os.fdopen(write_fd, "wb") as w:
                w.write(identity)
            argv = [argv[0], "--decrypt", "--identity", f"/dev/fd/{read_fd}", *argv[1:]]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            pass_fds=(read_fd,) if read_fd >= 0 else (),
        )
    except FileNotFoundError:
        raise BackupError("off-site copies need age (Debian package age)") from None
    finally:
        if read_fd >= 0:
            os.close(read_fd)
    if proc.returncode != 0:
        message = proc.stderr.strip().replace("\n", " ")[-300:]
        if identity is not None and "no identity matched" in message:
            raise BackupError(
                f"refused: the identity given cannot decrypt {what} (wrong key? it was "
                f"encrypted to other recipients): {message}; nothing was changed"
            )
        raise BackupError(f"age failed on {what}: {message}")


def recipients(cfg: Config) -> list[str]:
    """The public keys off-site copies are encrypted to."""
    try:
        lines = Path(cfg.offsite_recipients_file).read_text(encoding="utf-8").splitlines()
    except OSError:
        raise BackupError(f"recipients file {cfg.offsite_recipients_file} is missing") from None
    keys = [li.strip() for li in lines if li.strip() and not li.lstrip().startswith("#")]
    if not keys:
        raise BackupError(f"recipients file {cfg.offsite_recipients_file} names no public key")
    return keys


def encrypt(cfg: Config, source: Path, dest: Path) -> None:
    _age(
        [
            "age",
            "--encrypt",
            "--recipients-file",
            cfg.offsite_recipients_file,
            "-o",
            str(dest),
            str(source),
        ],
        source.name,
    )


def decrypt(identity: bytes, source: Path, dest: Path, what: str) -> None:
    _age(["age", "-o", str(dest), str(source)], what, identity)


@contextlib.contextmanager
def _work_dir(cfg: Config, backup_id: str) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix=f"{OFFSITE_PREFIX}{backup_id}-", dir=cfg.dir))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def push(cfg: Config, files: BackupFiles, store: Store | None = None) -> dict[str, Any]:
    """Encrypt one verified local backup, upload it, check it; the index goes last."""
    manifest, problems = read_manifest(files)
    if manifest is None or problems:
        raise BackupError(f"not copying {files.id} off-site: " + "; ".join(problems))
    store = store or open_store(cfg)
    keys = object_keys(cfg, files.id)
    index: dict[str, Any] = {
        "format": INDEX_FORMAT,
        "tool": f"ocpizza-backup {TOOL_VERSION}",
        "id": files.id,
        "kind": manifest.get("kind"),
        "database": manifest.get("database"),
        "finished_at": manifest["finished_at"],
        "encryption": "age",
        "recipients": recipients(cfg),
        "objects": {},
    }
    with _work_dir(cfg, files.id) as work:
        for name, source in (("data", files.data), ("manifest", files.manifest)):
            encrypted = work / Path(keys[name]).name
            encrypt(cfg, source, encrypted)
            stored = store.upload(encrypted, keys[name])
            stored["sha256"] = sha256_file(encrypted)
            index["objects"][name] = stored
        index["uploaded_at"] = iso(utc_now())
        index_file = work / Path(keys["index"]).name
        index_file.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        store.upload(index_file, keys["index"])
    data = index["objects"]["data"]
    log(
        f"backup {files.id} copied off-site, encrypted: s3://{cfg.offsite_bucket}/{data['key']} "
        f"({data['bytes']} bytes, size and ETag checked)"
    )
    return index


def read_index(cfg: Config, store: Store, backup_id: str) -> dict[str, Any] | None:
    """The index of one remote backup, None when there is none."""
    raw = store.get_bytes(object_keys(cfg, backup_id)["index"])
    if raw is None:
        return None
    try:
        index = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"off-site index of {backup_id} is unreadable: {exc}") from None
    if not isinstance(index, dict) or index.get("id") != backup_id:
        raise BackupError(f"off-site index of {backup_id} does not describe it")
    return index


def remote_backups(cfg: Config, store: Store) -> dict[str, dict[str, Any]]:
    """Every backup in the bucket: its index (when complete) and its object sizes."""
    root = f"{cfg.offsite_prefix}/" if cfg.offsite_prefix else ""
    found: dict[str, dict[str, Any]] = {}
    for key, size in store.list(root).items():
        backup_id = remote_id(cfg, key)
        if backup_id is not None:
            found.setdefault(backup_id, {"objects": {}})["objects"][key] = size
    for backup_id, entry in found.items():
        keys = object_keys(cfg, backup_id)
        entry["problems"] = []
        index = read_index(cfg, store, backup_id) if keys["index"] in entry["objects"] else None
        entry["index"] = index
        if index is None:
            entry["problems"].append("unfinished upload (no index)")
            continue
        for name in ("data", "manifest"):
            want = index["objects"][name]["bytes"]
            have = entry["objects"].get(keys[name])
            if have != want:
                entry["problems"].append(f"{name} object is {have} bytes, the index says {want}")
    return found


def list_remote(cfg: Config, store: Store | None = None) -> list[dict[str, Any]]:
    store = store or open_store(cfg)
    rows = []
    for backup_id, entry in sorted(remote_backups(cfg, store).items()):
        index = entry["index"] or {}
        rows.append(
            {
                "id": backup_id,
                "kind": index.get("kind"),
                "time": index.get("finished_at"),
                "bytes": ((index.get("objects") or {}).get("data") or {}).get("bytes"),
                "ok": not entry["problems"],
                "problems": entry["problems"],
            }
        )
    return rows


def _entry(backup_id: str, time: str | None, good: bool) -> RetentionEntry:
    """One remote backup as the retention policy sees it (time from its index or id)."""
    when = None
    with contextlib.suppress(ValueError, TypeError):
        when = parse_time(time or "")
    if when is None and (m := STAMP_RE.search(backup_id)):
        when = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return RetentionEntry(backup_id, when, good)


def prune_remote(cfg: Config, store: Store | None = None, dry_run: bool = False) -> list[str]:
    """The local retention policy, applied to the copies in the bucket."""
    store = store or open_store(cfg)
    remote = remote_backups(cfg, store)
    entries = [
        _entry(i, (e["index"] or {}).get("finished_at"), not e["problems"])
        for i, e in remote.items()
    ]
    plan = plan_retention(entries, cfg.keep_daily, cfg.keep_weekly)
    for backup_id in plan.prune:
        if dry_run:
            log(f"would prune off-site {backup_id}")
            continue
        store.delete(sorted(remote[backup_id]["objects"]))
        log(f"pruned off-site {backup_id}")
    return plan.prune


def sync(cfg: Config, local: list[BackupFiles], store: Store | None = None) -> dict[str, Any]:
    """Copy the local backups the bucket lacks (a failed upload is retried on the
    next run), then apply retention there."""
    store = store or open_store(cfg)
    remote = remote_backups(cfg, store)
    pushed = []
    for files in local:
        manifest, problems = read_manifest(files)
        if manifest is None or problems or manifest.get("kind") in LOCAL_ONLY_KINDS:
            continue
        if files.id in remote and not remote[files.id]["problems"]:
            continue
        push(cfg, files, store)
        pushed.append(files.id)
    return {"pushed": pushed, "pruned": prune_remote(cfg, store)}


def fetch(cfg: Config, backup_id: str, identity: bytes, into: Path) -> BackupFiles:
    """Download one backup, check it against its index, decrypt it into ``into``."""
    if not ID_RE.match(backup_id):
        raise BackupError(f"'{backup_id}' is not a backup id")
    store = open_store(cfg)
    index = read_index(cfg, store, backup_id)
    if index is None:
        available = [r["id"] for r in list_remote(cfg, store) if r["ok"]]
        raise UnknownBackup(
            f"no backup with id '{backup_id}' off-site in s3://{cfg.offsite_bucket}/"
            f"{cfg.offsite_prefix}. Available off-site: " + (", ".join(available) or "none")
        )
    into.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = object_keys(cfg, backup_id)
    plain = {"data": into / f"{backup_id}.sql.gz", "manifest": into / f"{backup_id}.manifest.json"}
    for name in ("manifest", "data"):
        want = index["objects"][name]
        encrypted = into / Path(keys[name]).name
        size, sha256 = store.download(keys[name], encrypted)
        if size != want["bytes"]:
            raise BackupError(
                f"refused: off-site object {keys[name]} is {size} bytes, its index says "
                f"{want['bytes']} (truncated or replaced); nothing was changed"
            )
        if sha256 != want["sha256"]:
            raise BackupError(
                f"refused: off-site object {keys[name]} is corrupt (sha256 {sha256[:12]}..., "
                f"its index says {want['sha256'][:12]}...); nothing was changed"
            )
        with encrypted.open("rb") as fh:
            if fh.read(len(AGE_HEADER)) != AGE_HEADER:
                raise BackupError(f"refused: off-site object {keys[name]} is not age-encrypted")
        decrypt(identity, encrypted, plain[name], keys[name])
        encrypted.unlink()
    log(f"backup {backup_id} downloaded from off-site, checked against its index and decrypted")
    return BackupFiles(backup_id, into, plain["data"], plain["manifest"])
