"""Small helpers every module uses: log lines, UTC times, sizes."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterable
from typing import IO

# Bytes read or written at a time when streaming a backup.
CHUNK = 1 << 20


def log(message: str, level: str = "info") -> None:
    """Write one line for the operator (and the journal) on stderr."""
    prefix = ""
    if os.environ.get("JOURNAL_STREAM"):
        prefix = {"err": "<3>", "warning": "<4>", "info": "<6>"}.get(level, "<6>")
    elif level != "info":
        prefix = f"{level}: "
    print(f"{prefix}{message}", file=sys.stderr, flush=True)


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    """A time as manifests write it: 2026-11-29T07:15:00Z."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> dt.datetime:
    """Parse an ISO 8601 UTC time as written in manifests."""
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def pump(
    chunks: Iterable[bytes], sink: IO[bytes], producer: subprocess.Popen[bytes]
) -> OSError | None:
    """Write chunks into sink (the next program's standard input) and close it.
    If the next program stops reading, kill the producer and return the error."""
    try:
        for chunk in chunks:
            sink.write(chunk)
    except OSError as exc:
        producer.kill()
        return exc
    finally:
        with contextlib.suppress(OSError):
            sink.close()
    return None
