#!/usr/bin/python
"""Apply a directory of SQL files once each, through a ledger table."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mysql_schema_apply
short_description: Apply the schema repository's SQL files once each, in file-name order
description:
  - Applies every C(*.sql) file of O(path) that the ledger table does not list yet, in
    file-name order, with the C(mysql) command-line client (so C(DELIMITER) and comments
    work as in a terminal), and records its name, sha256 and time in the ledger.
  - A file that was applied and has changed since stops the run with its name; it is
    never re-applied silently. Write a new file instead.
  - A file that fails stops the run with its name and the server's error, and is not
    recorded. Statements of that file that ran before the error stay (MySQL commits DDL
    implicitly); fix forward with a new file.
  - Check mode lists the files that would be applied and applies none.
  - Connects as the operating-system user running the module through the server's
    unix socket (root on Debian's MariaDB and Ubuntu's MySQL).
version_added: "1.0.0"
options:
  path:
    description: Directory holding the SQL files (a checkout of C(database.git)).
    type: path
    required: true
  database:
    description: Database the files are applied to.
    type: str
    required: true
  ledger_table:
    description: Name of the ledger table, created in O(database) when missing.
    type: str
    default: schema_migrations
  login_unix_socket:
    description: Server socket; empty uses the client's default.
    type: str
    default: ""
  mysql_client:
    description: Path of the C(mysql) client.
    type: str
    default: mysql
author:
  - OC Pizza infrastructure team
"""

EXAMPLES = r"""
- name: Apply database.git
  mysql_schema_apply:
    path: /var/lib/ocpizza-schema
    database: oc_pizza
"""

RETURN = r"""
applied:
  description: Files applied by this run (or that would be, in check mode).
  type: list
  elements: str
  returned: always
already_applied:
  description: Files the ledger already listed, unchanged.
  type: list
  elements: str
  returned: always
"""

import hashlib
import os
import re
import subprocess
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

_IDENT = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()


def sql_files(directory: Path) -> list[Path]:
    """The ``*.sql`` files of a directory (not recursive), in file-name order."""
    return sorted((p for p in directory.iterdir() if p.is_file() and p.suffix == ".sql"),
                  key=lambda p: p.name)


def plan(files: dict[str, str], ledger: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """Split file name → sha256 into (to apply, already applied, changed since applied)."""
    pending, done, changed = [], [], []
    for name in sorted(files):
        if name not in ledger:
            pending.append(name)
        elif ledger[name] == files[name]:
            done.append(name)
        else:
            changed.append(name)
    return pending, done, changed


class Client:
    """Runs the mysql command-line client."""

    def __init__(self, module: AnsibleModule, database: str) -> None:
        self.module = module
        self.base = [module.params["mysql_client"], "--batch", "--skip-column-names"]
        if module.params["login_unix_socket"]:
            self.base.append(f"--socket={module.params['login_unix_socket']}")
        self.database = database

    def run(self, sql: str | None = None, stdin_path: Path | None = None) -> tuple[int, str, str]:
        """Run SQL (or a file on stdin) against the database."""
        args = [*self.base, f"--database={self.database}"]
        if sql is not None:
            args += ["--execute", sql]
        if stdin_path is not None:
            with stdin_path.open("rb") as handle:
                proc = subprocess.run(args, stdin=handle, capture_output=True, check=False)
        else:
            proc = subprocess.run(args, capture_output=True, check=False)
        return (proc.returncode, proc.stdout.decode(errors="replace"),
                proc.stderr.decode(errors="replace"))

    def must(self, sql: str) -> str:
        """Run SQL, fail the module on error."""
        rc, out, err = self.run(sql)
        if rc != 0:
            self.module.fail_json(msg=f"mysql_schema_apply: {err.strip() or out.strip()}", sql=sql)
        return out


def main() -> None:
    """Module entry point."""
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "database": {"type": "str", "required": True},
            "ledger_table": {"type": "str", "default": "schema_migrations"},
            "login_unix_socket": {"type": "str", "default": ""},
            "mysql_client": {"type": "str", "default": "mysql"},
        },
        supports_check_mode=True,
    )
    directory = Path(module.params["path"])
    database, table = module.params["database"], module.params["ledger_table"]
    for label, value in (("database", database), ("ledger_table", table)):
        if not _IDENT.match(value):
            module.fail_json(msg=f"mysql_schema_apply: {label} must be letters, digits and _, "
                                 f"got {value!r}")
    if not directory.is_dir():
        module.fail_json(msg=f"mysql_schema_apply: {directory} is not a directory")

    files = {p.name: sha256_file(p) for p in sql_files(directory)}
    client = Client(module, database)
    exists = client.must(
        "SELECT COUNT(*) FROM information_schema.tables "
        f"WHERE table_schema = '{database}' AND table_name = '{table}'"
    ).strip() == "1"
    ledger: dict[str, str] = {}
    if exists:
        for line in client.must(f"SELECT filename, sha256 FROM `{table}`").splitlines():
            name, _, digest = line.partition("\t")
            ledger[name] = digest

    pending, done, changed = plan(files, ledger)
    if changed:
        module.fail_json(
            msg="mysql_schema_apply: applied schema file(s) changed since they were applied: "
                + ", ".join(changed)
                + ". A file is applied once and never again: restore it and add a new file "
                  "with the change.",
            changed_files=changed, applied=[], already_applied=done,
        )
    if module.check_mode or not pending:
        module.exit_json(changed=bool(pending), applied=pending, already_applied=done)

    if not exists:
        client.must(
            f"CREATE TABLE IF NOT EXISTS `{table}` ("
            " filename VARCHAR(255) NOT NULL PRIMARY KEY,"
            " sha256 CHAR(64) NOT NULL,"
            " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )
    applied: list[str] = []
    for name in pending:
        rc, out, err = client.run(stdin_path=directory / name)
        if rc != 0:
            module.fail_json(
                msg=f"mysql_schema_apply: {name} failed and was not recorded: "
                    f"{(err or out).strip()}",
                failed_file=name, applied=applied, already_applied=done,
                changed=bool(applied),
            )
        safe = name.replace("'", "''")
        client.must(f"INSERT INTO `{table}` (filename, sha256) VALUES ('{safe}', '{files[name]}')")
        applied.append(name)
    os.sync()
    module.exit_json(changed=True, applied=applied, already_applied=done)


if __name__ == "__main__":
    main()
