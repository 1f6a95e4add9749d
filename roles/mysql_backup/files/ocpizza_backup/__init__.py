"""ocpizza-backup: consistent, verified backups of one MariaDB/MySQL database.

Installed on the database hosts by the Ansible role ``mysql_backup`` under
``/usr/local/lib/ocpizza-backup/ocpizza_backup/``, run through the launcher
``/usr/local/sbin/ocpizza-backup`` by ``ocpizza-backup.service`` (daily
timer) and by the role's entry points (tasks/backup.yml, list.yml,
restore.yml). Python 3.11+ standard library only, plus the
``mysql``/``mysqldump`` clients and ``gzip``.

Commands::

    ocpizza-backup backup [--kind manual] [--json]   one backup, verified
    ocpizza-backup run                               the timer's job: backup + prune
    ocpizza-backup verify ID|PATH [--quick] [--json] check a backup, change nothing
    ocpizza-backup list [--full] [--json]            every backup, with its status
    ocpizza-backup prune [--dry-run] [--json]        apply the retention policy
    ocpizza-backup checkin [success|fail]            monitoring ping (ExecStopPost)
    ocpizza-backup binlog-archive [--json]           flush + archive the closed binary logs
    ocpizza-backup pitr-plan --until T|--until-position F:P [--archive] [--json]
                                                     what a restore up to a point needs
    ocpizza-backup restore-load ID|PATH --scratch DB --previous DB [--safety ID]
                                [--until T|--until-position F:P]
    ocpizza-backup restore-switch [--drop-previous]
    ocpizza-backup drill [--archive] [--json]        restore drill: newest backup + binary
                                                     logs into a scratch database, checked,
                                                     dropped (ocpizza-backup-drill.timer)

A backup is a directory ``<dir>/<id>/`` holding ``<id>.sql.gz`` (a
``mysqldump --single-transaction`` of the database, gzip-compressed) and
``<id>.manifest.json`` (server, time, binary log position, sizes, exact row
count of every table as dumped, sha256 of the compressed file). It is
written under ``<dir>/.partial-<id>/`` and renamed into place only once
complete and verified, so a directory named like a backup id is always a
complete backup.

One module per concern: ``dumpscan`` (reading a dump), ``manifest`` (where a
backup lives and what it claims), ``verify`` (checking it), ``retention``
(what to keep), ``backup`` (taking one), ``restore`` (loading and switching),
``binlog`` (the binary-log archive and point-in-time plans and replays),
``cli`` (the command line); ``config``, ``common``, ``db``, ``store`` and
``checkin`` hold what they share.

Exit status: 0 success, 1 failure or refusal, 2 unknown backup id.
"""

from __future__ import annotations

TOOL_VERSION = "1"


class BackupError(Exception):
    """A failure or a refusal, with a message meant for the operator."""


class UnknownBackup(BackupError):
    """The backup named on the command line does not exist."""
