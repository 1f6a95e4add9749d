"""The mysql_schema_apply module: its pure parts, and its flow against a fake mysql client."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from mysql_schema_apply import (
    bad_file_names,
    changed_message,
    ledger_ddl,
    main,
    missing,
    option_file_text,
    parse_rows,
    plan,
    sha256_file,
    sql_files,
)


def test_plan_splits_new_done_and_changed():
    files = {"001_a.sql": "aa", "002_b.sql": "bb", "003_c.sql": "cc"}
    ledger = {"001_a.sql": "aa", "002_b.sql": "XX"}
    assert plan(files, ledger) == (["003_c.sql"], ["001_a.sql"], ["002_b.sql"])


def test_plan_orders_by_file_name_and_ignores_removed_files():
    files = {"010_z.sql": "z", "002_b.sql": "b", "001_a.sql": "a"}
    assert plan(files, {"000_gone.sql": "g"})[0] == ["001_a.sql", "002_b.sql", "010_z.sql"]
    assert missing(files, {"000_gone.sql": "g", "001_a.sql": "a"}) == ["000_gone.sql"]


def test_sql_files_only_sql_in_name_order(tmp_path):
    for name in ("002_b.sql", "001_a.sql", "README.md", "003.sql.bak"):
        (tmp_path / name).write_text("-- x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "000.sql").write_text("-- nested\n")
    assert [p.name for p in sql_files(tmp_path)] == ["001_a.sql", "002_b.sql"]


def test_sha256_file(tmp_path):
    f = tmp_path / "x.sql"
    f.write_bytes(b"SELECT 1;\n")
    assert sha256_file(f) == hashlib.sha256(b"SELECT 1;\n").hexdigest()


def test_file_names_that_cannot_be_recorded_safely():
    names = ["001_a.sql", "2024-01-02.fix.sql", "o'brien.sql", "a b.sql", "-x.sql", "back\\.sql"]
    assert bad_file_names(names) == ["o'brien.sql", "a b.sql", "-x.sql", "back\\.sql"]


def test_changed_message_names_each_file_and_both_checksums():
    files = {"001_a.sql": "b" * 64}
    msg = changed_message(["001_a.sql"], files, {"001_a.sql": "a" * 64})
    assert "001_a.sql (applied as sha256 aaaaaaaaaaaa…, now bbbbbbbbbbbb…)" in msg
    assert "new file" in msg


def test_ledger_compares_names_byte_for_byte():
    ddl = ledger_ddl("schema_migrations")
    assert "CREATE TABLE IF NOT EXISTS `schema_migrations`" in ddl
    assert "COLLATE utf8mb4_bin NOT NULL PRIMARY KEY" in ddl


def test_parse_rows():
    assert parse_rows("a\tb\nc\td\n") == [["a", "b"], ["c", "d"]]
    assert parse_rows("") == []


# --- The module's flow, with a fake `mysql` client --------------------------------

FAKE_CLIENT = textwrap.dedent(
    """\
    import json, re, sys
    state_path = {state!r}
    state = json.load(open(state_path))
    args = sys.argv[1:]
    if "--help" in args:
        sys.stdout.write(state.get("help", "--batch  Don't use history file.\\n"))
        sys.exit(0)
    state["calls"].append(args)
    if args and args[0].startswith("--defaults-extra-file="):
        import os, stat
        path = args[0].split("=", 1)[1]
        state["option_files"].append(
            {{"path": path, "text": open(path).read(),
             "mode": stat.S_IMODE(os.stat(path).st_mode)}}
        )
    sql = args[args.index("--execute") + 1] if "--execute" in args else None
    out = ""
    if sql is None:
        text = sys.stdin.read()
        if "FAIL" in text:
            json.dump(state, open(state_path, "w"))
            sys.stderr.write("ERROR 1064 (42000) at line 2: "
                             "You have an error in your SQL syntax\\n")
            sys.exit(1)
        state["executed"].append(text)
    elif "information_schema.tables" in sql:
        out = "1\\n" if state["ledger"] is not None else "0\\n"
    elif sql.startswith("SELECT filename"):
        out = "".join(f"{{n}}\\t{{s}}\\n" for n, s in state["ledger"].items())
    elif sql.startswith("CREATE TABLE"):
        state["ledger"] = {{}}
    elif sql.startswith("INSERT INTO"):
        name, digest = re.findall(r"'([^']*)'", sql)
        state["ledger"][name] = digest
    json.dump(state, open(state_path, "w"))
    sys.stdout.write(out)
    """
)


@pytest.fixture
def fake(tmp_path):
    """A schema directory, a fake client and its state (ledger, executed files, calls)."""
    state_path = tmp_path / "state.json"
    state_path.write_text(
        json.dumps({"ledger": None, "executed": [], "calls": [], "option_files": []})
    )
    client = tmp_path / "mysql"
    client.write_text(f"#!{sys.executable}\n" + FAKE_CLIENT.format(state=str(state_path)))
    client.chmod(0o755)
    schema = tmp_path / "schema"
    schema.mkdir()
    (schema / "001_create.sql").write_text("CREATE TABLE a (id INT);\n")
    (schema / "002_seed.sql").write_text("INSERT INTO a VALUES (1);\n")

    class Fake:
        path = schema
        mysql = str(client)

        @staticmethod
        def state():
            return json.loads(state_path.read_text())

    return Fake


def run(fake, capsys, check_mode=False, **extra):
    params = {
        "path": str(fake.path),
        "database": "oc_pizza",
        "mysql_client": fake.mysql,
        "login_unix_socket": "/run/mysqld/mysqld.sock",
        "_ansible_check_mode": check_mode,
        **extra,
    }
    with patch_module_args(params), pytest.raises(SystemExit):
        main()
    return json.loads(capsys.readouterr().out)


def test_first_run_applies_every_file_in_order_then_nothing(fake, capsys):
    result = run(fake, capsys)
    assert result["changed"] is True
    assert result["applied"] == ["001_create.sql", "002_seed.sql"]
    state = fake.state()
    assert state["executed"] == ["CREATE TABLE a (id INT);\n", "INSERT INTO a VALUES (1);\n"]
    assert set(state["ledger"]) == {"001_create.sql", "002_seed.sql"}
    assert state["ledger"]["001_create.sql"] == sha256_file(fake.path / "001_create.sql")
    call = state["calls"][-1]
    assert "--socket=/run/mysqld/mysqld.sock" in call
    assert "--default-character-set=utf8mb4" in call

    again = run(fake, capsys)
    assert again["changed"] is False
    assert again["applied"] == []
    assert again["already_applied"] == ["001_create.sql", "002_seed.sql"]
    assert len(fake.state()["executed"]) == 2


def test_check_mode_lists_the_files_and_applies_none(fake, capsys):
    run(fake, capsys)
    (fake.path / "003_index.sql").write_text("CREATE INDEX i ON a (id);\n")
    result = run(fake, capsys, check_mode=True)
    assert result["changed"] is True
    assert result["applied"] == ["003_index.sql"]
    assert "003_index.sql" not in fake.state()["ledger"]
    assert len(fake.state()["executed"]) == 2


def test_check_mode_before_the_first_clone(fake, capsys, tmp_path):
    fake.path = tmp_path / "not-cloned-yet"
    result = run(fake, capsys, check_mode=True)
    assert result["changed"] is True
    assert "not cloned" in result["msg"]


def test_a_changed_applied_file_stops_the_run_by_name(fake, capsys):
    run(fake, capsys)
    (fake.path / "001_create.sql").write_text("CREATE TABLE a (id BIGINT);\n")
    (fake.path / "003_index.sql").write_text("CREATE INDEX i ON a (id);\n")
    for check_mode in (True, False):
        result = run(fake, capsys, check_mode=check_mode)
        assert result["failed"] is True
        assert result["changed_files"] == ["001_create.sql"]
        assert "changed since they were applied: 001_create.sql" in result["msg"]
    assert "003_index.sql" not in fake.state()["ledger"]  # nothing applied after the refusal
    assert len(fake.state()["executed"]) == 2


def test_a_failing_file_stops_the_run_and_is_not_recorded(fake, capsys):
    (fake.path / "003_broken.sql").write_text("SELECT 1;\nFAIL;\n")
    (fake.path / "004_after.sql").write_text("SELECT 2;\n")
    result = run(fake, capsys)
    assert result["failed"] is True
    assert result["failed_file"] == "003_broken.sql"
    assert result["msg"].startswith(
        "mysql_schema_apply: 003_broken.sql failed and was not recorded"
    )
    assert "You have an error in your SQL syntax" in result["msg"]
    assert result["applied"] == ["001_create.sql", "002_seed.sql"]
    assert set(fake.state()["ledger"]) == {"001_create.sql", "002_seed.sql"}


def test_a_removed_file_is_reported_not_an_error(fake, capsys):
    run(fake, capsys)
    (fake.path / "002_seed.sql").unlink()
    result = run(fake, capsys)
    assert result["changed"] is False
    assert result["missing"] == ["002_seed.sql"]


def test_unsafe_file_names_stop_before_anything_is_applied(fake, capsys):
    (fake.path / "003_it's.sql").write_text("SELECT 1;\n")
    result = run(fake, capsys)
    assert result["failed"] is True
    assert "rename: 003_it's.sql" in result["msg"]
    assert fake.state()["executed"] == []


@pytest.mark.parametrize(("option", "value"), [("database", "oc-pizza"), ("ledger_table", "a;b")])
def test_identifiers_are_checked(fake, capsys, option, value):
    params = {
        "path": str(fake.path),
        "database": "oc_pizza",
        "mysql_client": fake.mysql,
        option: value,
    }
    with patch_module_args(params), pytest.raises(SystemExit):
        main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    assert f"{option} must be letters, digits and _" in result["msg"]


# --- Finding 1 (issue 15): SQL only, never the client's own commands ---------------


def test_every_client_call_runs_in_binary_mode(fake, capsys):
    run(fake, capsys)
    calls = fake.state()["calls"]
    assert calls
    for call in calls:
        assert "--binary-mode" in call, call
        assert "--sandbox" not in call  # this fake client does not know it


def test_the_sandbox_is_on_where_the_client_has_it(fake, capsys, tmp_path):
    state = fake.state()
    state["help"] = "  --sandbox   Disallow commands that access the file system\n"
    (tmp_path / "state.json").write_text(json.dumps(state))
    run(fake, capsys)
    for call in fake.state()["calls"]:
        assert "--sandbox" in call and "--binary-mode" in call, call


@pytest.mark.parametrize(
    "line",
    [
        "\\! touch /tmp/pwned",
        "  \\! sh -c 'id > /tmp/pwned'",
        "\\. /etc/mysql/debian.cnf",
        "\\T /tmp/pwned.log",
    ],
)
def test_a_client_command_in_a_schema_file_is_refused_before_anything(fake, capsys, line):
    (fake.path / "003_evil.sql").write_text(f"SELECT 1;\n{line}\nSELECT 2;\n")
    result = run(fake, capsys)
    assert result["failed"] is True
    assert "never mysql client commands" in result["msg"]
    assert "003_evil.sql line(s) 2" in result["msg"]
    state = fake.state()
    assert state["executed"] == []  # not even the harmless files before it
    assert state["calls"] == []  # the server was not even asked


def test_a_backslash_inside_sql_is_not_a_client_command(fake, capsys):
    (fake.path / "003_ok.sql").write_text("INSERT INTO a (s) VALUES ('a\\!b');\n")
    result = run(fake, capsys)
    assert result["applied"] == ["001_create.sql", "002_seed.sql", "003_ok.sql"]


def test_a_symbolic_link_is_refused_and_never_read(fake, capsys, tmp_path):
    secret = tmp_path / "backup.cnf"
    secret.write_text("[client]\npassword=s3cret\n")
    (fake.path / "003_link.sql").symlink_to(secret)
    result = run(fake, capsys)
    assert result["failed"] is True
    assert "not symbolic links or paths outside it; refused: 003_link.sql" in result["msg"]
    assert fake.state()["executed"] == []
    assert "s3cret" not in json.dumps(fake.state())


def test_a_link_to_a_file_of_the_repository_is_refused_too(fake, capsys):
    (fake.path / "003_again.sql").symlink_to(fake.path / "001_create.sql")
    result = run(fake, capsys)
    assert result["failed"] is True
    assert "refused: 003_again.sql" in result["msg"]


def test_the_bytes_applied_are_the_bytes_recorded(fake, capsys):
    run(fake, capsys)
    state = fake.state()
    for name, body in zip(["001_create.sql", "002_seed.sql"], state["executed"], strict=True):
        assert state["ledger"][name] == hashlib.sha256(body.encode()).hexdigest()


# --- Finding 1, the rest (issue 15): the migration account, not root ---------------

PASSWORD = "m1gr\"at\\ion#pw'x"


def test_the_files_are_applied_as_the_migration_account_whose_password_is_in_no_argument(
    fake, capsys
):
    result = run(fake, capsys, login_user="oc_pizza_migration", login_password=PASSWORD)
    assert result["applied"] == ["001_create.sql", "002_seed.sql"]
    state = fake.state()
    assert state["calls"]
    for call in state["calls"]:
        # The client reads --defaults-extra-file only as its first option.
        assert call[0].startswith("--defaults-extra-file="), call
        assert "--binary-mode" in call
        assert not any(PASSWORD in arg or "oc_pizza_migration" in arg for arg in call), call
    files = state["option_files"]
    assert len({f["path"] for f in files}) == 1  # one file for the whole run
    assert files[0]["mode"] == 0o600
    assert files[0]["text"] == option_file_text("oc_pizza_migration", PASSWORD)
    assert "user = oc_pizza_migration\n" in files[0]["text"]
    # ...and it is gone when the module ends.
    assert not Path(files[0]["path"]).exists()


def test_the_option_file_is_removed_when_a_file_fails_too(fake, capsys):
    (fake.path / "003_bad.sql").write_text("FAIL;\n")
    result = run(fake, capsys, login_user="oc_pizza_migration", login_password=PASSWORD)
    assert result["failed"] is True
    assert not Path(fake.state()["option_files"][0]["path"]).exists()


def test_the_password_is_quoted_as_option_files_expect():
    text = option_file_text("m", 'a"b\\c\nd')
    assert text == '[client]\nuser = m\npassword = "a\\"b\\\\c\\nd"\n'


def test_without_an_account_no_option_file_is_written(fake, capsys):
    run(fake, capsys)
    state = fake.state()
    assert state["option_files"] == []
    assert not any(a.startswith("--defaults-extra-file") for c in state["calls"] for a in c)


def test_a_malformed_account_name_stops_before_the_client_runs(fake, capsys):
    result = run(fake, capsys, login_user="x\npassword = y", login_password=PASSWORD)
    assert result["failed"] is True
    assert "login_user must be letters, digits and _" in result["msg"]
    assert fake.state()["calls"] == []
