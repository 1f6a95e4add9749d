"""Where a backup lives on disk, how it is named, and what its manifest says."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from ocpizza_backup import BackupError, UnknownBackup
from ocpizza_backup.common import parse_time
from ocpizza_backup.store import BINLOG_DIR

MANIFEST_FORMAT = 1
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STAMP_RE = re.compile(r"-(\d{8}T\d{6}Z)$")
REQUIRED_FIELDS = {
    "format": int,
    "id": str,
    "database": str,
    "file": str,
    "sha256": str,
    "compressed_bytes": int,
    "dump_bytes": int,
    "tables": dict,
    "finished_at": str,
}


@dataclasses.dataclass
class BackupFiles:
    """Where one backup lives."""

    id: str
    directory: Path
    data: Path
    manifest: Path


def backup_files(directory: Path, backup_id: str) -> BackupFiles:
    return BackupFiles(
        backup_id,
        directory,
        directory / f"{backup_id}.sql.gz",
        directory / f"{backup_id}.manifest.json",
    )


def list_ids(root: Path) -> list[str]:
    """Ids of the backup directories under root (hidden work dirs excluded)."""
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and p.name != BINLOG_DIR
        and ID_RE.match(p.name)
    )


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
        # A backup directory is named after its backup (<dir>/<id>/<id>.*):
        # that manifest wins over anything else the directory holds.
        named = path / f"{path.name}.manifest.json"
        manifests = [named] if named.is_file() else sorted(path.glob("*.manifest.json"))
        if len(manifests) != 1:
            raise BackupError(
                f"{path}: expected one *.manifest.json in the directory, found {len(manifests)}"
            )
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
    raise BackupError(f"{path}: not a backup (expected a directory, a .sql.gz or a .manifest.json)")


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
    problems = [
        f"{files.manifest}: field '{k}' missing or not {t.__name__}"
        for k, t in REQUIRED_FIELDS.items()
        if not isinstance(manifest.get(k), t)
    ]
    if problems:
        return None, problems
    if manifest["format"] != MANIFEST_FORMAT:
        problems.append(
            f"{files.manifest}: manifest format {manifest['format']} "
            f"(this tool reads {MANIFEST_FORMAT})"
        )
    if manifest["id"] != files.id or manifest["file"] != files.data.name:
        problems.append(
            f"{files.manifest}: manifest does not match: it describes backup "
            f"'{manifest['id']}' with file '{manifest['file']}', but this is "
            f"'{files.id}' with file '{files.data.name}'"
        )
    try:
        parse_time(manifest["finished_at"])
    except ValueError:
        problems.append(
            f"{files.manifest}: finished_at '{manifest['finished_at']}' is not a "
            "UTC time like 2026-11-29T07:15:00Z"
        )
    return manifest, problems


def usable_manifest(files: BackupFiles) -> dict[str, Any]:
    """The manifest, or a refusal naming what is wrong with it."""
    manifest, problems = read_manifest(files)
    if manifest is None or problems:
        raise BackupError("refused: " + "; ".join(problems))
    return manifest
