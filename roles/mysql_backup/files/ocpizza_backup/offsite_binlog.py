"""Off-site copies of the binary-log archive, encrypted like the backups.

For each archived binary log ``<file>``, under ``<prefix>/binlog/`` in the
bucket: ``<file>.age`` (the binary log, encrypted with age to the recipients
file) and, uploaded last, ``<file>.json`` in clear (the local sidecar: size,
sha256 and start time of the plain file, plus the size, sha256 and ETag of
the encrypted object). A file without its ``.json`` is an unfinished upload,
retried on the next run. Remote retention follows the local one: the binary
logs older than the oldest kept backup's are deleted there too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ocpizza_backup import BackupError
from ocpizza_backup.binlog import archive_dir, read_archive, split_name
from ocpizza_backup.common import log
from ocpizza_backup.config import Config
from ocpizza_backup.offsite import _work_dir, encrypt, open_store
from ocpizza_backup.s3store import Store
from ocpizza_backup.verify import sha256_file


def remote_root(cfg: Config) -> str:
    """The key prefix of the archived binary logs in the bucket."""
    return f"{cfg.offsite_prefix}/binlog/" if cfg.offsite_prefix else "binlog/"


def push_binlogs(
    cfg: Config, keep_from: str | None, store: Store | None = None
) -> dict[str, list[str]]:
    """Upload the archived binary logs the bucket lacks (index last), then
    delete the remote ones older than keep_from."""
    store = store or open_store(cfg)
    root = remote_root(cfg)
    remote = store.list(root)
    pushed = []
    for entry in read_archive(cfg):
        name = entry["file"]
        if f"{root}{name}.json" in remote:
            continue
        with _work_dir(cfg, "binlog") as work:
            encrypted = work / f"{name}.age"
            encrypt(cfg, archive_dir(cfg) / name, encrypted)
            stored = store.upload(encrypted, f"{root}{name}.age")
            stored["sha256"] = sha256_file(encrypted)
            index: dict[str, Any] = {**entry, "encrypted": stored}
            index_file = work / f"{name}.json"
            index_file.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
            store.upload(index_file, f"{root}{name}.json")
        pushed.append(name)
        log(f"binary log {name} copied off-site, encrypted ({stored['bytes']} bytes)")
    pruned: list[str] = []
    if keep_from is not None:
        _, first = split_name(keep_from)
        old = sorted(
            key for key in remote if (seq := _seq(_file_of(key))) is not None and seq < first
        )
        if old:
            store.delete(old)
            pruned = sorted({_file_of(k) for k in old})
            log(f"pruned off-site binary logs {', '.join(pruned)}")
    return {"pushed": pushed, "pruned": pruned}


def _file_of(key: str) -> str:
    """'<root>mysql-bin.000012.age' -> 'mysql-bin.000012'."""
    return Path(key).name.removesuffix(".age").removesuffix(".json")


def _seq(name: str) -> int | None:
    try:
        return split_name(name)[1]
    except BackupError:
        return None
