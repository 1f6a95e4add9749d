"""Issue 15, finding 2: a restore loads only what it verified, from a root-only copy,
with the mysql client's own commands off (the ocpizza-backup tool, against a fake
mysql client that records every call)."""

from __future__ import annotations

import gzip
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from ocpizza_backup import BackupError, db
from ocpizza_backup.manifest import resolve
from ocpizza_backup.restore import restore_load
from test_backup_tool import DUMP, TABLES, config, make_backup

# Answers what restore_load asks, and records each call: its arguments and,
# for a load (SQL on standard input), the bytes it received.
FAKE_MYSQL = """
import json, sys
args = sys.argv[1:]
if "--help" in args:
    sys.stdout.write(HELP)
    sys.exit(0)
call = {"args": args}
if "-e" in args:
    q = args[args.index("-e") + 1]
    if "information_schema.SCHEMATA" in q:
        print("0")
    elif "'tables', TABLE_NAME" in q:
        for t in TABLES:
            print("tables\\t" + t)
    elif "COUNT(*) FROM" in q:
        for t, n in sorted(TABLES.items()):
            print(t + "\\t" + str(n))
else:
    call["stdin"] = sys.stdin.buffer.read().decode("utf-8", "replace")
with open(LOG, "a") as fh:
    fh.write(json.dumps(call) + "\\n")
"""


def fake_mysql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, help_text: str = "") -> Path:
    """A fake ``mysql`` first on PATH; returns the log of its calls."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "mysql-calls.jsonl"
    log.touch()
    script = bindir / "mysql"
    script.write_text(
        f"#!{sys.executable}\nHELP = {help_text!r}\nLOG = {str(log)!r}\nTABLES = {TABLES!r}\n"
        + FAKE_MYSQL
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    # The client's options are read once per process: read this fake's.
    if hasattr(db, "client_safety_options"):
        db.client_safety_options.cache_clear()
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def loads(log: Path) -> list[dict]:
    """The calls that received SQL on standard input (a dump being loaded)."""
    return [c for c in calls(log) if "stdin" in c]


def test_a_good_backup_is_loaded_from_a_verified_copy_in_binary_mode(tmp_path, monkeypatch):
    log = fake_mysql(tmp_path, monkeypatch)
    cfg = config(tmp_path)
    files = make_backup(cfg.dir)
    result = restore_load(cfg, files, "oc_pizza_restore_1", "oc_pizza_pre_restore_1")
    assert result["scratch"] == "oc_pizza_restore_1"
    (load,) = loads(log)
    assert load["stdin"] == DUMP.decode()
    assert "--binary-mode" in load["args"]
    assert "--sandbox" not in load["args"]  # this fake client does not have it
    # The root-only copy is gone once loaded.
    assert [p.name for p in cfg.dir.iterdir() if p.name.startswith(".verified-")] == []


def test_the_sandbox_is_on_where_the_client_has_it(tmp_path, monkeypatch):
    log = fake_mysql(tmp_path, monkeypatch, help_text="  --sandbox  Disallow commands\n")
    cfg = config(tmp_path)
    restore_load(cfg, make_backup(cfg.dir), "s", "p")
    (load,) = loads(log)
    assert {"--binary-mode", "--sandbox"} <= set(load["args"])


def test_a_file_that_does_not_match_its_manifest_is_never_loaded(tmp_path, monkeypatch):
    log = fake_mysql(tmp_path, monkeypatch)
    cfg = config(tmp_path)
    files = make_backup(cfg.dir)
    # Swapped after the backup was taken (or after restore.yml verified it).
    files.data.write_bytes(gzip.compress(b"\\! touch /tmp/pwned\nDROP DATABASE oc_pizza;\n"))
    with pytest.raises(BackupError, match=r"does not match its manifest.*nothing was loaded"):
        restore_load(cfg, files, "s", "p")
    assert loads(log) == []
    assert not any("CREATE DATABASE" in " ".join(c["args"]) for c in calls(log))


def test_a_symbolic_link_is_refused(tmp_path, monkeypatch):
    log = fake_mysql(tmp_path, monkeypatch)
    cfg = config(tmp_path)
    files = make_backup(cfg.dir)
    real = tmp_path / "elsewhere.sql.gz"
    files.data.rename(real)
    files.data.symlink_to(real)
    with pytest.raises(BackupError, match="cannot be read as a regular file"):
        restore_load(cfg, files, "s", "p")
    assert loads(log) == []


def test_the_verified_copy_is_root_only_while_it_is_loaded(tmp_path, monkeypatch):
    fake_mysql(tmp_path, monkeypatch)
    cfg = config(tmp_path)
    files = make_backup(cfg.dir)
    seen: list[tuple[int, int]] = []
    import ocpizza_backup.restore as restore

    real_load = restore._load

    def spy(files_, data, *rest):
        seen.append((data.parent.stat().st_mode & 0o777, data.stat().st_mode & 0o777))
        assert data.parent.parent == cfg.dir
        return real_load(files_, data, *rest)

    monkeypatch.setattr(restore, "_load", spy)
    restore_load(cfg, files, "s", "p")
    assert seen == [(0o700, 0o600)]


def test_a_backup_directory_resolves_to_the_backup_it_is_named_after(tmp_path):
    """backup.yml -e fetch=true leaves <dir>/<host>/<id>/<id>.*: other files beside it
    (an operator's notes, another manifest) are not the backup."""
    files = make_backup(tmp_path)
    (files.directory / "notes.manifest.json").write_text("{}")
    found = resolve(tmp_path, str(files.directory))
    assert (found.id, found.manifest) == (files.id, files.manifest)
