"""The tool's settings: /etc/ocpizza-backup.conf, written by the role."""

from __future__ import annotations

import configparser
import dataclasses
from pathlib import Path

from ocpizza_backup import BackupError

DEFAULT_CONFIG = "/etc/ocpizza-backup.conf"


@dataclasses.dataclass
class Config:
    """Settings from /etc/ocpizza-backup.conf (section [backup])."""

    dir: Path = Path("/var/backups/ocpizza")
    database: str = "oc_pizza"
    defaults_file: str = "/etc/mysql/backup.cnf"
    keep_daily: int = 7
    keep_weekly: int = 4
    compressor: str = "gzip"
    compress_level: int = 6
    checkin_url: str = ""
    lock_timeout: int = 600
    # Off-site copies (section [offsite]; off while endpoint is empty).
    offsite_endpoint: str = ""
    offsite_bucket: str = ""
    offsite_region: str = ""
    offsite_prefix: str = ""
    offsite_recipients_file: str = "/etc/ocpizza-backup/offsite-recipients.txt"
    offsite_credentials_file: str = "/etc/ocpizza-backup/offsite-credentials.conf"
    offsite_part_mib: int = 16

    @property
    def offsite(self) -> bool:
        """Whether backups are copied off-site (an endpoint is set)."""
        return bool(self.offsite_endpoint)

    @classmethod
    def load(cls, path: str | None) -> Config:
        cfg = cls()
        file = Path(path or DEFAULT_CONFIG)
        if not file.exists():
            if path:
                raise BackupError(f"configuration file {file} does not exist")
            return cfg
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(file, encoding="utf-8")
        if parser.has_section("backup"):
            sec = parser["backup"]
            cfg.dir = Path(sec.get("dir", str(cfg.dir)))
            cfg.database = sec.get("database", cfg.database)
            cfg.defaults_file = sec.get("defaults_file", cfg.defaults_file)
            cfg.keep_daily = sec.getint("keep_daily", cfg.keep_daily)
            cfg.keep_weekly = sec.getint("keep_weekly", cfg.keep_weekly)
            cfg.compressor = sec.get("compressor", cfg.compressor)
            cfg.compress_level = sec.getint("compress_level", cfg.compress_level)
            cfg.checkin_url = sec.get("checkin_url", cfg.checkin_url).strip()
            cfg.lock_timeout = sec.getint("lock_timeout", cfg.lock_timeout)
        if parser.has_section("offsite"):
            sec = parser["offsite"]
            cfg.offsite_endpoint = sec.get("endpoint", "").strip()
            cfg.offsite_bucket = sec.get("bucket", "").strip()
            cfg.offsite_region = sec.get("region", "").strip()
            cfg.offsite_prefix = sec.get("prefix", "").strip().strip("/")
            cfg.offsite_recipients_file = sec.get("recipients_file", cfg.offsite_recipients_file)
            cfg.offsite_credentials_file = sec.get("credentials_file", cfg.offsite_credentials_file)
            cfg.offsite_part_mib = sec.getint("part_mib", cfg.offsite_part_mib)
        return cfg
