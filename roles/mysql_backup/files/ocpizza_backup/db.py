"""Talking to the server through the ``mysql`` client."""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Iterable

from ocpizza_backup import BackupError

OBJECT_KINDS = ("views", "triggers", "routines", "events")


def quote_name(name: str) -> str:
    """A MySQL identifier, back-quoted."""
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str) -> str:
    """A MySQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@functools.cache
def client_safety_options(program: str = "mysql") -> tuple[str, ...]:
    """Options that keep the client to SQL when it reads a dump: ``--binary-mode``
    (its own commands, such as ``\\!`` shell or ``source``, are off) and, where the
    client has it, ``--sandbox`` (MariaDB 10.5.25, 10.6.18, 10.11.8, 11.x)."""
    try:
        proc = subprocess.run(
            [program, "--no-defaults", "--help"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=30,
        )
        sandbox = b"--sandbox" in proc.stdout
    except (OSError, subprocess.TimeoutExpired):
        sandbox = False
    return ("--binary-mode", "--sandbox") if sandbox else ("--binary-mode",)


class Mysql:
    """Run SQL with the ``mysql`` client, as root (unix socket) or as the
    backup user (``defaults_file``)."""

    def __init__(self, defaults_file: str | None = None) -> None:
        self.defaults_file = defaults_file

    def argv(self, program: str = "mysql") -> list[str]:
        """The start of a client command line, with the credentials file if any."""
        argv = [program]
        if self.defaults_file:
            argv.append(f"--defaults-extra-file={self.defaults_file}")
        return argv

    def query(self, sql: str, database: str | None = None) -> list[list[str]]:
        """Rows of the last result set, as lists of strings (NULL -> 'NULL')."""
        argv = [
            *self.argv(),
            "--batch",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
            "-e",
            sql,
        ]
        if database:
            argv.append(database)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BackupError(
                f"mysql failed ({proc.stderr.strip() or proc.returncode}) running: {sql[:200]}"
            )
        return [[_unescape_batch(f) for f in line.split("\t")] for line in proc.stdout.splitlines()]

    def execute(self, sql: str, database: str | None = None) -> None:
        """Run statements (which may change DELIMITER) fed on standard input."""
        argv = [*self.argv(), "--batch", "--default-character-set=utf8mb4"]
        if database:
            argv.append(database)
        proc = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BackupError(f"mysql failed: {proc.stderr.strip() or proc.returncode}")


def _unescape_batch(field: str) -> str:
    if "\\" not in field:
        return field
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m.group(1), m.group(1)), field
    )


def schema_objects(db: Mysql, database: str) -> dict[str, list[str]]:
    """Names of the base tables, views, triggers, routines and events."""
    q = quote_string(database)
    rows = db.query(
        f"SELECT 'tables', TABLE_NAME FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA={q} AND TABLE_TYPE='BASE TABLE' "
        f"UNION ALL SELECT 'views', TABLE_NAME FROM information_schema.VIEWS "
        f"WHERE TABLE_SCHEMA={q} "
        f"UNION ALL SELECT 'triggers', TRIGGER_NAME FROM information_schema.TRIGGERS "
        f"WHERE TRIGGER_SCHEMA={q} "
        f"UNION ALL SELECT 'routines', CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) "
        f"FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA={q} "
        f"UNION ALL SELECT 'events', EVENT_NAME FROM information_schema.EVENTS "
        f"WHERE EVENT_SCHEMA={q}"
    )
    objects: dict[str, list[str]] = {k: [] for k in ("tables", *OBJECT_KINDS)}
    for kind, name in rows:
        objects[kind].append(name)
    return {k: sorted(v) for k, v in objects.items()}


def database_exists(db: Mysql, database: str) -> bool:
    rows = db.query(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA "
        f"WHERE SCHEMA_NAME={quote_string(database)}"
    )
    return rows[0][0] != "0"


def exact_counts(db: Mysql, database: str, tables: Iterable[str]) -> dict[str, int]:
    """SELECT COUNT(*) of every table, in one statement."""
    names = sorted(tables)
    if not names:
        return {}
    parts = [
        f"SELECT {quote_string(t)}, COUNT(*) FROM {quote_name(database)}.{quote_name(t)}"
        for t in names
    ]
    return {name: int(count) for name, count in db.query(" UNION ALL ".join(parts))}
