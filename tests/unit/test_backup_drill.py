"""ocpizza-backup drill: what it refuses before touching the server, and the report
it keeps. The restore itself (scratch database, checks, binary logs, drop) runs
against a real MariaDB in molecule/backup."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from ocpizza_backup import BackupError
from ocpizza_backup.binlog import newest_point
from ocpizza_backup.cli import main
from ocpizza_backup.config import Config
from ocpizza_backup.drill import REPORT, drill, drill_target, write_report


def test_no_backup_fails_the_drill_and_the_report_says_why(tmp_path: Path) -> None:
    cfg = Config(dir=tmp_path / "backups")
    cfg.dir.mkdir()
    with pytest.raises(BackupError, match="drill FAILED: no backup in"):
        drill(cfg)
    report = json.loads((cfg.dir / REPORT).read_text())
    assert report["ok"] is False and "no backup" in report["problems"][0]
    assert report["recovery_seconds"] >= 0 and report["finished_at"]
    assert stat.S_IMODE((cfg.dir / REPORT).stat().st_mode) == 0o600


def test_without_an_archive_the_drill_restores_the_backup_alone(tmp_path: Path) -> None:
    assert drill_target(newest_point(Config(dir=tmp_path))) is None


def test_the_report_is_replaced_whole(tmp_path: Path) -> None:
    cfg = Config(dir=tmp_path)
    write_report(cfg, {"ok": False, "problems": ["first"]})
    write_report(cfg, {"ok": True})
    assert json.loads((tmp_path / REPORT).read_text()) == {"ok": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == [REPORT]


def test_the_command_fails_with_the_reason_in_its_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "ocpizza-backup.conf"
    conf.write_text(f"[backup]\ndir = {tmp_path / 'backups'}\n")
    (tmp_path / "backups").mkdir()
    assert main(["--config", str(conf), "drill", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and "no backup" in out["problems"][0]
