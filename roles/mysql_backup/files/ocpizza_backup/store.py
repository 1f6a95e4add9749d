"""The backup directory: its lock, and what interrupted runs leave in it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from ocpizza_backup import BackupError
from ocpizza_backup.common import log
from ocpizza_backup.config import Config

# Work directories: a backup being written, a copy uploaded for a restore,
# the verified root-only copy a restore loads.
PARTIAL_PREFIX = ".partial-"
INCOMING_PREFIX = ".incoming-"
VERIFIED_PREFIX = ".verified-"
# The encrypted copies of a backup being uploaded off-site.
OFFSITE_PREFIX = ".offsite-"
# The archived binary logs (point-in-time restores), beside the backups.
BINLOG_DIR = "binlog"


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
                    raise BackupError(
                        f"{what}: another backup or restore still holds "
                        f"{cfg.dir}/.lock after {cfg.lock_timeout} s"
                    ) from None
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
        if path.name.startswith((PARTIAL_PREFIX, VERIFIED_PREFIX, OFFSITE_PREFIX)):
            shutil.rmtree(path, ignore_errors=True)
            log(f"removed {path.name}, left by an interrupted backup", "warning")
        elif path.name.startswith(INCOMING_PREFIX) and time.time() - path.stat().st_mtime > 86400:
            shutil.rmtree(path, ignore_errors=True)


def remove_upload(cfg: Config, directory: Path) -> None:
    """Remove a copy uploaded for a restore (<dir>/.incoming-*), once used."""
    if directory.parent == cfg.dir and directory.name.startswith(INCOMING_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
