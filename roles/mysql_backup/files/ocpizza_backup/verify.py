"""Checking a backup against its manifest, without touching any database."""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ocpizza_backup import BackupError
from ocpizza_backup.common import CHUNK
from ocpizza_backup.dumpscan import DumpScanner
from ocpizza_backup.manifest import BackupFiles, read_manifest


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
            "id": self.files.id,
            "directory": str(self.files.directory),
            "file": str(self.files.data),
            "manifest": str(self.files.manifest),
            "ok": self.ok,
            "full": self.full,
            "problems": self.problems,
            "kind": m.get("kind"),
            "time": m.get("finished_at"),
            "database": m.get("database"),
            "compressed_bytes": m.get("compressed_bytes"),
            "dump_bytes": m.get("dump_bytes"),
            "tables": len(m.get("tables") or {}),
            "rows": sum((m.get("tables") or {}).values()),
            "sha256": m.get("sha256"),
            "binlog": m.get("binlog"),
        }


def gunzip_chunks(
    stream: IO[bytes], on_compressed: Callable[[bytes], object] | None = None
) -> Iterator[bytes]:
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
            problems.append(
                f"{what}: table {table} has {actual[table]} rows, manifest says {expected[table]}"
            )
    return problems


def _content_problems(files: BackupFiles, manifest: dict[str, Any]) -> tuple[list[str], str]:
    """Decompress the whole file: what is wrong with the dump, and its sha256."""
    problems: list[str] = []
    hasher = hashlib.sha256()
    scanner = DumpScanner()
    try:
        with files.data.open("rb") as fh:
            for out in gunzip_chunks(fh, hasher.update):
                scanner.feed(out)
        scanner.close()
        if not scanner.completed:
            problems.append(
                f"{files.data}: the dump inside is incomplete (no "
                "'-- Dump completed' line at its end)"
            )
        if scanner.bytes != manifest["dump_bytes"]:
            problems.append(
                f"{files.data}: decompresses to {scanner.bytes} bytes, manifest "
                f"says {manifest['dump_bytes']}"
            )
        problems.extend(
            compare_tables(manifest["tables"], scanner.tables, f"{files.data}: dump content")
        )
    except BackupError as exc:
        problems.append(f"{files.data}: {exc}")
        # Hash the whole file again, to report a checksum mismatch as well.
        return problems, sha256_file(files.data)
    return problems, hasher.hexdigest()


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
        problems.append(
            f"{files.data}: size is {size} bytes, manifest says "
            f"{manifest['compressed_bytes']} (file truncated or replaced)"
        )
    if full:
        content, digest = _content_problems(files, manifest)
        problems.extend(content)
    else:
        digest = sha256_file(files.data)
    if digest != manifest["sha256"]:
        problems.insert(
            0,
            f"{files.data}: sha256 is {digest}, manifest says "
            f"{manifest['sha256']} (file corrupt or altered)",
        )
    return Verification(files, manifest, problems, full)
