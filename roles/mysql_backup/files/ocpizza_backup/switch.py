"""The switch itself: scratch tables in, live tables aside, atomically, with rollback."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from ocpizza_backup import BackupError
from ocpizza_backup.db import Mysql, quote_name, schema_objects

_DDL_DUMP = (
    "mysqldump",
    "--skip-comments",
    "--skip-dump-date",
    "--no-create-db",
    "--default-character-set=utf8mb4",
    "--no-data",
)


def _ddl(what: str, database: str, *options: str) -> str:
    """One mysqldump of definitions only; raise naming ``what`` when it fails."""
    proc = subprocess.run([*_DDL_DUMP, *options], capture_output=True, check=False)
    if proc.returncode != 0:
        raise BackupError(
            f"mysqldump of the {what} of {database} failed: "
            f"{proc.stderr.decode('utf-8', 'replace').strip()}"
        )
    return proc.stdout.decode("utf-8")


def objects_sql(database: str, views: list[str]) -> str:
    """DDL of the triggers, routines, events and views of a database (mysqldump)."""
    options = ("--no-create-info", "--routines", "--triggers", "--events")
    parts = [_ddl("objects", database, *options, database)]
    if views:
        parts.append(_ddl("views", database, "--skip-triggers", database, *views))
    return "\n".join(parts)


def drop_objects(root: Mysql, database: str, objects: dict[str, list[str]]) -> None:
    """Drop the triggers, views, routines and events of a database."""
    db = quote_name(database)
    statements = [f"DROP TRIGGER IF EXISTS {db}.{quote_name(t)};" for t in objects["triggers"]]
    statements += [f"DROP VIEW IF EXISTS {db}.{quote_name(v)};" for v in objects["views"]]
    for routine in objects["routines"]:
        rtype, name = routine.split(" ", 1)
        statements.append(f"DROP {rtype} IF EXISTS {db}.{quote_name(name)};")
    statements += [f"DROP EVENT IF EXISTS {db}.{quote_name(e)};" for e in objects["events"]]
    if statements:
        root.execute("\n".join(statements))


def move_tables(root: Mysql, source: str, target: str, tables: list[str]) -> None:
    """Move tables between databases in one atomic RENAME TABLE."""
    if not tables:
        return
    src, dst = quote_name(source), quote_name(target)
    pairs = ", ".join(f"{src}.{quote_name(t)} TO {dst}.{quote_name(t)}" for t in tables)
    root.execute(f"SET SESSION lock_wait_timeout = 60;\nRENAME TABLE {pairs};")


def switch_tables(
    root: Mysql,
    live: str,
    scratch: str,
    previous: str | None,
    create: Callable[[str], None],
    check: Callable[[str], list[str]],
) -> None:
    """Move the live tables to ``previous`` (None: there is no live database yet,
    ``create`` makes it) and the scratch tables into ``live``, each set in one
    RENAME TABLE; recreate triggers, views, routines and events from the
    scratch copy's own definitions; ``check`` the result. On any failure the
    live database is put back as it was and the error says so."""
    new_objects = schema_objects(root, scratch)
    new_sql = objects_sql(scratch, new_objects["views"])
    old_objects = schema_objects(root, live) if previous else None
    old_sql = objects_sql(live, old_objects["views"]) if old_objects else ""
    steps: list[str] = []
    try:
        if old_objects is not None and previous:
            create(previous)
            steps.append("previous")
            drop_objects(root, live, old_objects)
            steps.append("old objects dropped")
            move_tables(root, live, previous, old_objects["tables"])
            steps.append("old tables moved")
        else:
            create(live)
        drop_objects(root, scratch, new_objects)
        steps.append("scratch objects dropped")
        move_tables(root, scratch, live, new_objects["tables"])
        steps.append("new tables moved")
        root.execute(new_sql, database=live)
        steps.append("new objects created")
        problems = check(live)
        if problems:
            raise BackupError("after the switch: " + "; ".join(problems))
    except BackupError as exc:
        rollback = _rollback(
            root, live, scratch, previous or "", steps, new_objects, old_objects, old_sql
        )
        raise BackupError(f"switch failed ({exc}); {rollback}") from exc


def _rollback(
    root: Mysql,
    live: str,
    scratch: str,
    previous: str,
    steps: list[str],
    new_objects: dict[str, list[str]],
    old_objects: dict[str, list[str]] | None,
    old_sql: str,
) -> str:
    """Undo a partial switch; say what state the databases are in."""
    try:
        if "new tables moved" in steps:
            drop_objects(root, live, new_objects)
            move_tables(root, live, scratch, new_objects["tables"])
        if old_objects is not None and "old tables moved" in steps:
            move_tables(root, previous, live, old_objects["tables"])
        if old_objects is not None and "old objects dropped" in steps:
            root.execute(old_sql, database=live)
        if "previous" in steps:
            root.query(f"DROP DATABASE IF EXISTS {quote_name(previous)}")
        root.query(f"DROP DATABASE IF EXISTS {quote_name(scratch)}")
    except BackupError as exc:
        return (
            f"ROLLBACK FAILED ({exc}): the live database {live} may be incomplete; its "
            f"tables may be in {previous}; restore the safety backup"
        )
    return f"rolled back: {live} is as it was before the restore"
