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
    implicitly); fix forward with a new file, or make files idempotent
    (C(CREATE TABLE IF NOT EXISTS)) so that a fixed file can run again.
  - A file the ledger lists but the directory no longer holds is reported in RV(missing)
    and otherwise ignored (a branch that dropped it, a file renamed after it was applied).
  - File names are limited to letters, digits, C(.), C(_) and C(-); any other C(*.sql)
    name stops the run before anything is applied.
  - The files are SQL and nothing else. The client runs with C(--binary-mode) (its own
    commands such as C(\\!) (shell), C(source) or C(tee) are off) and, where the client
    has it, C(--sandbox); a line that starts with a client command stops the run before
    anything is applied. A C(*.sql) entry that is a symbolic link, or is not a regular file
    inside O(path), stops the run too (a committed C(001.sql -> /etc/...) is never read).
  - Each file is read once: the bytes checksummed are the bytes sent to the server.
  - Check mode lists the files that would be applied (RV(applied)) and applies none; it
    stops on a changed file exactly as a real run would. When O(path) does not exist yet
    (a first run in check mode, before the repository is cloned), it reports a change
    without listing files.
  - Connects through the server's unix socket as O(login_user) (role C(mysql) gives it the
    migration account, which holds the privileges DDL needs on O(database) and nothing
    else). Its password reaches the client in an option file readable by the module's user
    only (C(--defaults-extra-file)), removed when the module ends; it never appears in the
    client's command line. Without O(login_user), the operating-system user running the
    module (root on Debian's MariaDB and Ubuntu's MySQL, through socket authentication).
version_added: "1.0.0"
options:
  path:
    description: Directory holding the SQL files (a checkout of C(database.git)).
    type: path
    required: true
  database:
    description: Database the files are applied to (letters, digits and C(_)).
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
  login_user:
    description:
      - Database account the files are applied as; empty connects as the operating-system
        user running the module (socket authentication).
    type: str
    default: ""
  login_password:
    description: Password of O(login_user).
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
    path: /var/lib/ocpizza-schema/database
    database: oc_pizza
    login_unix_socket: /run/mysqld/mysqld.sock
    login_user: oc_pizza_migration
    login_password: "{{ vault_mysql_migration_password }}"
"""

RETURN = r"""
applied:
  description: Files applied by this run (in check mode, the files that would be).
  type: list
  elements: str
  returned: always
already_applied:
  description: Files the ledger already listed, unchanged.
  type: list
  elements: str
  returned: always
missing:
  description: Files the ledger lists that the directory does not hold.
  type: list
  elements: str
  returned: always
changed_files:
  description: Applied files whose content changed since (the run fails).
  type: list
  elements: str
  returned: failure
failed_file:
  description: The file whose application failed (the run fails).
  type: str
  returned: failure
"""

import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

_IDENT = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,250}\.sql$")
# A line that starts with one of the mysql client's own commands that reach
# outside the server: \! (system), \. (source), \T (tee), \P (pager), \e (edit),
# \r (connect). --binary-mode turns every client command off anyway (the line
# then reaches the server, which refuses it); the scan names the file and the
# line before anything is applied.
_CLIENT_COMMAND = re.compile(rb"^[ \t]*\\[!.TPer]", re.MULTILINE)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()


def sql_files(directory: Path) -> list[Path]:
    """The ``*.sql`` entries of a directory (not recursive), in file-name order.

    Symbolic links are listed too (not followed): unsafe_entries() refuses them.
    """
    return sorted(
        (p for p in directory.iterdir() if p.suffix == ".sql" and (p.is_symlink() or p.is_file())),
        key=lambda p: p.name,
    )


def unsafe_entries(directory: Path, paths: list[Path]) -> list[str]:
    """Entries that are symbolic links or not regular files inside ``directory``."""
    root = directory.resolve()
    bad = []
    for path in paths:
        if path.is_symlink() or not path.is_file() or path.resolve().parent != root:
            bad.append(path.name)
    return bad


def read_file(path: Path) -> bytes:
    """A schema file's bytes, read once without following a symbolic link."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def client_commands(content: bytes) -> list[int]:
    """Line numbers (from 1) of the lines the mysql client would run as its own commands."""
    return [content.count(b"\n", 0, m.start()) + 1 for m in _CLIENT_COMMAND.finditer(content)]


def bad_file_names(names: list[str]) -> list[str]:
    """Names the ledger cannot hold safely (only letters, digits, ``.``, ``_``, ``-``)."""
    return [n for n in names if not _FILE_NAME.match(n)]


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


def missing(files: dict[str, str], ledger: dict[str, str]) -> list[str]:
    """Files the ledger lists that are not in the directory."""
    return sorted(set(ledger) - set(files))


def changed_message(changed: list[str], files: dict[str, str], ledger: dict[str, str]) -> str:
    """The error that names each changed file with its recorded and current sha256."""
    details = ", ".join(
        f"{name} (applied as sha256 {ledger[name][:12]}…, now {files[name][:12]}…)"
        for name in changed
    )
    return (
        f"mysql_schema_apply: applied schema file(s) changed since they were applied: "
        f"{details}. A file is applied once and never again: restore it in the repository "
        f"and put the change in a new file."
    )


def ledger_ddl(table: str) -> str:
    """CREATE TABLE of the ledger (file names compared byte for byte)."""
    return (
        f"CREATE TABLE IF NOT EXISTS `{table}` ("
        " filename VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,"
        " sha256 CHAR(64) CHARACTER SET ascii NOT NULL,"
        " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


def option_file_text(user: str, password: str) -> str:
    """A ``[client]`` option file naming the account, its password quoted and escaped."""
    quoted = password.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'[client]\nuser = {user}\npassword = "{quoted}"\n'


def write_option_file(user: str, password: str) -> str:
    """Write the account's option file, readable by this process's user only; its path."""
    fd, path = tempfile.mkstemp(prefix="ocpizza-schema-", suffix=".cnf")  # 0600, O_EXCL
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(option_file_text(user, password))
    return path


def parse_rows(output: str) -> list[list[str]]:
    """Rows of ``mysql --batch --skip-column-names`` output."""
    return [line.split("\t") for line in output.splitlines() if line]


class Client:
    """Runs the mysql command-line client."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.base = [module.params["mysql_client"]]
        if module.params["login_user"]:
            # The account and its password in a private file, never on the command line
            # (any local user can read another process's arguments). The client reads
            # --defaults-extra-file only as its first option.
            path = write_option_file(module.params["login_user"], module.params["login_password"])
            module.add_cleanup_file(path)
            self.base.append(f"--defaults-extra-file={path}")
        self.base += [
            "--batch",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
            # SQL only: the client's own commands (\\! shell, source, tee) are off.
            "--binary-mode",
        ]
        if client_has_sandbox(module.params["mysql_client"]):
            self.base.append("--sandbox")
        if module.params["login_unix_socket"]:
            self.base.append(f"--socket={module.params['login_unix_socket']}")

    def run(
        self, sql: str | None = None, stdin: bytes | None = None, database: str | None = None
    ) -> tuple[int, str, str]:
        """Run SQL (or bytes on stdin), in ``database`` when given."""
        args = list(self.base)
        if database:
            args.append(f"--database={database}")
        if sql is not None:
            args += ["--execute", sql]
        if stdin is not None:
            proc = subprocess.run(args, input=stdin, capture_output=True, check=False)
        else:
            proc = subprocess.run(args, capture_output=True, check=False)
        return (
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )

    def must(self, sql: str, database: str | None = None) -> str:
        """Run SQL, fail the module on error."""
        rc, out, err = self.run(sql, database=database)
        if rc != 0:
            self.module.fail_json(msg=f"mysql_schema_apply: {err.strip() or out.strip()}", sql=sql)
        return out


def refused_entries(directory: Path, paths: list[Path]) -> str | None:
    """Why the directory's entries cannot be applied, before any is read (None: they can)."""
    bad = bad_file_names([p.name for p in paths])
    if bad:
        return (
            "schema file names may hold only letters, digits, '.', '_' and '-' (and start "
            f"with a letter or digit); rename: {', '.join(bad)}"
        )
    unsafe = unsafe_entries(directory, paths)
    if unsafe:
        return (
            "schema files must be regular files of the repository, not symbolic links or "
            f"paths outside it; refused: {', '.join(unsafe)}"
        )
    return None


def refused_contents(contents: dict[str, bytes]) -> str | None:
    """Why the files' contents cannot be applied (None: they can)."""
    found = {name: client_commands(body) for name, body in sorted(contents.items())}
    where = "; ".join(
        f"{name} line(s) {', '.join(map(str, lines))}" for name, lines in found.items() if lines
    )
    if where:
        return (
            "schema files hold SQL only, never mysql client commands (\\! shell, \\. source, "
            f"\\T tee...); refused: {where}"
        )
    return None


def client_has_sandbox(mysql_client: str) -> bool:
    """Whether the client knows ``--sandbox`` (MariaDB 10.5.25, 10.6.18, 10.11.8, 11.x)."""
    try:
        proc = subprocess.run(
            [mysql_client, "--no-defaults", "--help"], capture_output=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"--sandbox" in proc.stdout


def read_ledger(client: Client, database: str, table: str) -> tuple[bool, dict[str, str]]:
    """Whether the ledger table exists, and its rows (file name → sha256)."""
    count = client.must(
        "SELECT COUNT(*) FROM information_schema.tables "
        f"WHERE table_schema = '{database}' AND table_name = '{table}'"
    ).strip()
    if count != "1":
        return False, {}
    rows = parse_rows(client.must(f"SELECT filename, sha256 FROM `{database}`.`{table}`"))
    return True, {row[0]: row[1] for row in rows if len(row) == 2}


def main() -> None:
    """Module entry point."""
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "database": {"type": "str", "required": True},
            "ledger_table": {"type": "str", "default": "schema_migrations"},
            "login_unix_socket": {"type": "str", "default": ""},
            "login_user": {"type": "str", "default": ""},
            "login_password": {"type": "str", "default": "", "no_log": True},
            "mysql_client": {"type": "str", "default": "mysql"},
        },
        supports_check_mode=True,
    )
    directory = Path(module.params["path"])
    database, table = module.params["database"], module.params["ledger_table"]
    login_user = module.params["login_user"]
    names = [("database", database), ("ledger_table", table)]
    for label, value in names + ([("login_user", login_user)] if login_user else []):
        if not _IDENT.match(value):
            module.fail_json(
                msg=f"mysql_schema_apply: {label} must be letters, digits and _, got {value!r}"
            )
    if not directory.is_dir():
        if module.check_mode:
            module.exit_json(
                changed=True,
                applied=[],
                already_applied=[],
                missing=[],
                msg=f"{directory} does not exist yet (the repository is not cloned): every "
                "SQL file of the repository would be applied",
            )
        module.fail_json(msg=f"mysql_schema_apply: {directory} is not a directory")

    paths = sql_files(directory)
    problem = refused_entries(directory, paths)
    contents = {} if problem else {p.name: read_file(p) for p in paths}
    problem = problem or refused_contents(contents)
    if problem:
        module.fail_json(
            msg=f"mysql_schema_apply: {problem}", applied=[], already_applied=[], missing=[]
        )
    files = {name: hashlib.sha256(body).hexdigest() for name, body in contents.items()}
    client = Client(module)
    exists, ledger = read_ledger(client, database, table)

    pending, done, changed = plan(files, ledger)
    gone = missing(files, ledger)
    if changed:
        module.fail_json(
            msg=changed_message(changed, files, ledger),
            changed_files=changed,
            applied=[],
            already_applied=done,
            missing=gone,
        )
    if module.check_mode or not pending:
        module.exit_json(changed=bool(pending), applied=pending, already_applied=done, missing=gone)

    if not exists:
        client.must(ledger_ddl(table), database=database)
    applied: list[str] = []
    for name in pending:
        # The bytes checksummed above, not the file again (it may have changed since).
        rc, out, err = client.run(stdin=contents[name], database=database)
        if rc != 0:
            module.fail_json(
                msg=f"mysql_schema_apply: {name} failed and was not recorded: "
                f"{(err or out).strip()}",
                failed_file=name,
                applied=applied,
                already_applied=done,
                missing=gone,
                changed=bool(applied),
            )
        # The name matched _FILE_NAME and the digest is hex: both are safe in quotes.
        client.must(
            f"INSERT INTO `{table}` (filename, sha256) VALUES ('{name}', '{files[name]}')",
            database=database,
        )
        applied.append(name)
    module.exit_json(changed=True, applied=applied, already_applied=done, missing=gone)


if __name__ == "__main__":
    main()
