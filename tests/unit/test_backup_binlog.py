"""ocpizza-backup's binary-log archive and point-in-time plans: parsing the
point, detecting a gap in the chain, choosing the backup, archiving against a
fake server."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import pytest
from ocpizza_backup import BackupError
from ocpizza_backup.binlog import (
    Target,
    archive,
    chain_gaps,
    parse_position,
    parse_until,
    plan,
    prune_archive,
    read_archive,
    replay_argv,
    without_gtid_seq,
)
from ocpizza_backup.cli import format_archive
from ocpizza_backup.config import Config
from ocpizza_backup.manifest import list_ids

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def iso(text: str) -> str:
    return at(text).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------
# parsing the point


def test_until_is_a_utc_time():
    assert parse_until(" 2026-11-29 14:03:00 ") == at("2026-11-29 14:03:00")
    assert parse_until("2026-11-29T14:03:00") == at("2026-11-29 14:03:00")


@pytest.mark.parametrize(
    "bad",
    [
        "2026-11-29",
        "2026-11-29T14:03:00Z",
        "2026-13-01 00:00:00",
        "yesterday",
        "",
        "2026-11-29 14:03:00; x",
    ],
)
def test_a_malformed_until_is_refused_naming_the_variable(bad):
    with pytest.raises(BackupError, match="until must be a UTC time 'YYYY-MM-DD HH:MM:SS'"):
        parse_until(bad)


def test_until_position_is_file_and_offset():
    assert parse_position("mysql-bin.000012:4567") == ("mysql-bin.000012", 4567)


@pytest.mark.parametrize(
    "bad", ["mysql-bin.000012", "mysql-bin:12", "x.000001:-3", ":4", "a b.000001:4"]
)
def test_a_malformed_position_is_refused_naming_the_variable(bad):
    with pytest.raises(BackupError, match="until_position must be <binlog file>:<position>"):
        parse_position(bad)


# --------------------------------------------------------------------------
# the chain


def test_chain_gaps_names_each_missing_file():
    have = ["mysql-bin.000003", "mysql-bin.000004", "mysql-bin.000007"]
    assert chain_gaps(have, "mysql-bin.000003", "mysql-bin.000007") == [
        "mysql-bin.000005",
        "mysql-bin.000006",
    ]
    assert chain_gaps(have, "mysql-bin.000003", "mysql-bin.000004") == []
    assert chain_gaps(have, "mysql-bin.000002", "mysql-bin.000003") == ["mysql-bin.000002"]


def _binlog(started: dt.datetime, size: int = 2000) -> bytes:
    return (b"\xfebin" + struct.pack("<I", int(started.timestamp()))).ljust(size, b"\0")


def _archive(cfg: Config, entries: list[tuple[str, str, str]]) -> None:
    """(file, started, archived) entries in cfg.dir/binlog."""
    root = cfg.dir / "binlog"
    root.mkdir(parents=True, exist_ok=True)
    import hashlib

    for name, started, archived in entries:
        data = _binlog(at(started))
        (root / name).write_bytes(data)
        (root / f"{name}.json").write_text(
            json.dumps(
                {
                    "file": name,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "started_at": iso(started),
                    "archived_at": iso(archived),
                }
            )
        )


def _backup(cfg: Config, finished: str, file: str, position: int) -> str:
    stamp = at(finished).strftime("%Y%m%dT%H%M%SZ")
    backup_id = f"oc_pizza-{stamp}"
    d = cfg.dir / backup_id
    d.mkdir(parents=True)
    manifest = {
        "format": 1,
        "id": backup_id,
        "file": f"{backup_id}.sql.gz",
        "kind": "scheduled",
        "database": "oc_pizza",
        "started_at": iso(finished),
        "finished_at": iso(finished),
        "sha256": "0" * 64,
        "compressed_bytes": 1,
        "dump_bytes": 1,
        "tables": {"pizza": 1},
        "binlog": {"file": file, "position": position, "gtid": None},
    }
    (d / f"{backup_id}.manifest.json").write_text(json.dumps(manifest))
    (d / f"{backup_id}.sql.gz").write_bytes(b"x")
    return backup_id


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    """Two backups (10:00 at 000003, 12:00 at 000005) and files 000003..000007."""
    c = Config(dir=tmp_path / "backups")
    c.dir.mkdir()
    c.first = _backup(c, "2026-11-29 10:00:00", "mysql-bin.000003", 1200)  # type: ignore[attr-defined]
    c.second = _backup(c, "2026-11-29 12:00:00", "mysql-bin.000005", 800)  # type: ignore[attr-defined]
    _archive(
        c,
        [
            ("mysql-bin.000003", "2026-11-29 09:00:00", "2026-11-29 11:00:00"),
            ("mysql-bin.000004", "2026-11-29 11:00:00", "2026-11-29 11:30:00"),
            ("mysql-bin.000005", "2026-11-29 11:30:00", "2026-11-29 12:30:00"),
            ("mysql-bin.000006", "2026-11-29 12:30:00", "2026-11-29 13:00:00"),
            ("mysql-bin.000007", "2026-11-29 13:00:00", "2026-11-29 13:05:00"),
        ],
    )
    return c


NOW = at("2026-11-29 14:00:00")


def test_the_archive_directory_is_not_a_backup(cfg):
    assert "binlog" not in list_ids(cfg.dir)


def test_until_a_time_starts_from_the_newest_backup_before_it(cfg):
    steps = plan(cfg, Target(time=at("2026-11-29 12:45:00")), NOW)
    assert steps["backup"] == cfg.second
    assert steps["start"] == {"file": "mysql-bin.000005", "position": 800}
    # 000007 started after the point: not needed.
    assert steps["files"] == ["mysql-bin.000005", "mysql-bin.000006"]
    steps = plan(cfg, Target(time=at("2026-11-29 11:15:00")), NOW)
    assert steps["backup"] == cfg.first
    assert steps["files"] == ["mysql-bin.000003", "mysql-bin.000004"]


def test_until_a_position_starts_from_the_newest_backup_before_it(cfg):
    steps = plan(cfg, Target(file="mysql-bin.000005", position=700), NOW)
    assert steps["backup"] == cfg.first
    assert steps["files"] == ["mysql-bin.000003", "mysql-bin.000004", "mysql-bin.000005"]
    steps = plan(cfg, Target(file="mysql-bin.000006", position=120), NOW)
    assert steps["backup"] == cfg.second


def test_a_point_in_the_future_is_refused(cfg):
    with pytest.raises(BackupError, match="is in the future"):
        plan(cfg, Target(time=at("2026-11-29 14:00:01")), NOW)


def test_a_point_before_the_oldest_backup_is_refused_naming_it(cfg):
    with pytest.raises(BackupError, match=f"before the oldest backup \\({cfg.first}"):
        plan(cfg, Target(time=at("2026-11-29 09:59:59")), NOW)
    with pytest.raises(BackupError, match="before the oldest backup"):
        plan(cfg, Target(file="mysql-bin.000003", position=1000), NOW)


def test_a_gap_in_the_chain_is_refused_naming_the_missing_file(cfg):
    (cfg.dir / "binlog" / "mysql-bin.000006.json").unlink()
    (cfg.dir / "binlog" / "mysql-bin.000006").unlink()
    with pytest.raises(
        BackupError, match=r"gap in the binary-log chain .*mysql-bin\.000006 missing"
    ):
        plan(cfg, Target(time=at("2026-11-29 13:02:00")), NOW)
    # A point before the gap is still restorable.
    assert plan(cfg, Target(time=at("2026-11-29 12:20:00")), NOW)["files"] == ["mysql-bin.000005"]


def test_a_point_past_the_archive_is_refused(cfg):
    with pytest.raises(BackupError, match="archive ends at 2026-11-29T13:05:00Z"):
        plan(cfg, Target(time=at("2026-11-29 13:30:00")), NOW)
    with pytest.raises(BackupError, match=r"mysql-bin\.000009 is not in the binary-log archive"):
        plan(cfg, Target(file="mysql-bin.000009", position=4), NOW)
    with pytest.raises(BackupError, match="past its end"):
        plan(cfg, Target(file="mysql-bin.000007", position=99999), NOW)


def test_a_replay_never_crosses_an_earlier_restore(cfg):
    (cfg.dir / "binlog" / "restores.json").write_text(
        json.dumps(
            [{"time": iso("2026-11-29 12:40:00"), "file": "mysql-bin.000006", "position": 900}]
        )
    )
    with pytest.raises(BackupError, match="a restore was switched in at 2026-11-29T12:40:00Z"):
        plan(cfg, Target(time=at("2026-11-29 12:50:00")), NOW)
    with pytest.raises(BackupError, match="cannot be replayed across it"):
        plan(cfg, Target(file="mysql-bin.000006", position=1000), NOW)
    # Before it, the plan stands.
    assert plan(cfg, Target(time=at("2026-11-29 12:35:00")), NOW)["backup"] == cfg.second


def test_replay_is_rewritten_for_the_scratch_database_and_stops_at_the_point(cfg):
    steps = plan(cfg, Target(time=at("2026-11-29 12:45:00")), NOW)
    argv = replay_argv(cfg, steps, Target(time=at("2026-11-29 12:45:00")), "oc_pizza_restore_1")
    assert "--start-position=800" in argv and "--stop-datetime=2026-11-29 12:45:00" in argv
    assert "--rewrite-db=oc_pizza->oc_pizza_restore_1" in argv
    assert "--database=oc_pizza" in argv
    assert argv[-2:] == [str(cfg.dir / "binlog" / f) for f in steps["files"]]


def test_the_replay_gets_new_gtids():
    lines = [
        b"#261130 18:28:33 server id 1  end_log_pos 10443728 GTID 0-1-7092 trans\n",
        b"/*M!100001 SET @@session.gtid_seq_no=7092*//*!*/;\n",
        b"/*!100001 SET @@session.gtid_domain_id=0*//*!*/;\n",
        b"BINLOG '\n",
    ]
    assert list(without_gtid_seq(lines)) == [lines[0], lines[2], lines[3]]


def test_pruning_keeps_the_binary_logs_of_the_oldest_backup_onwards(cfg):
    assert prune_archive(cfg, "mysql-bin.000005") == ["mysql-bin.000003", "mysql-bin.000004"]
    assert next(e["file"] for e in read_archive(cfg)) == "mysql-bin.000005"
    assert prune_archive(cfg, None) == []


def test_the_list_shows_the_newest_position_and_time(cfg):
    line = format_archive(cfg)
    assert "newest position mysql-bin.000007:2000" in line and "2026-11-29 13:05:00" in line
    # A later run that found nothing new extends the point.
    (cfg.dir / "binlog" / ".flushed.json").write_text(
        json.dumps(
            {
                "file": "mysql-bin.000008",
                "position": "385",
                "checked_at": iso("2026-11-29 13:40:00"),
            }
        )
    )
    assert "complete up to 2026-11-29 13:40:00 UTC" in format_archive(cfg)
    assert plan(cfg, Target(time=at("2026-11-29 13:30:00")), NOW)["files"][-1] == "mysql-bin.000007"
    assert "empty" in format_archive(Config(dir=cfg.dir / "none"))


# --------------------------------------------------------------------------
# archiving against a fake server


class FakeServer:
    """SHOW MASTER STATUS / FLUSH BINARY LOGS / SHOW BINARY LOGS on a directory."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.files = ["mysql-bin.000001"]
        self.flushes = 0
        self._write("mysql-bin.000001")

    def _write(self, name: str, extra: int = 0) -> None:
        (self.datadir / name).write_bytes(_binlog(NOW, 256 + extra))

    def commit(self) -> None:
        self._write(self.files[-1], extra=100)

    def query(self, sql: str) -> list[list[str]]:
        if sql.startswith("SELECT @@log_bin"):
            return [["1", str(self.datadir / "mysql-bin")]]
        if sql == "SHOW MASTER STATUS":
            last = self.files[-1]
            return [[last, str((self.datadir / last).stat().st_size)]]
        if sql == "FLUSH BINARY LOGS":
            self.flushes += 1
            self.files.append(f"mysql-bin.{len(self.files) + 1:06d}")
            self._write(self.files[-1])
            return []
        if sql == "SHOW BINARY LOGS":
            return [[f, "0"] for f in self.files]
        raise AssertionError(sql)


def test_archive_copies_closed_logs_once_and_flushes_only_when_there_is_news(tmp_path):
    datadir = tmp_path / "data"
    datadir.mkdir()
    server = FakeServer(datadir)
    c = Config(dir=tmp_path / "backups")
    result = archive(c, server)  # type: ignore[arg-type]
    assert result["added"] == ["mysql-bin.000001"] and server.flushes == 1
    assert result["newest"]["file"] == "mysql-bin.000001"
    # Nothing new: no flush, nothing copied.
    assert archive(c, server)["added"] == [] and server.flushes == 1  # type: ignore[arg-type]
    server.commit()
    assert archive(c, server)["added"] == ["mysql-bin.000002"]  # type: ignore[arg-type]
    entry = read_archive(c)[-1]
    assert entry["bytes"] == 356 and entry["started_at"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (c.dir / "binlog" / "mysql-bin.000002").read_bytes() == (
        datadir / "mysql-bin.000002"
    ).read_bytes()
