from __future__ import annotations

import hashlib

from mysql_schema_apply import plan, sha256_file, sql_files


def test_plan_splits_new_done_and_changed():
    files = {"001_a.sql": "aa", "002_b.sql": "bb", "003_c.sql": "cc"}
    ledger = {"001_a.sql": "aa", "002_b.sql": "XX"}
    assert plan(files, ledger) == (["003_c.sql"], ["001_a.sql"], ["002_b.sql"])


def test_plan_orders_by_file_name_and_ignores_removed_files():
    files = {"010_z.sql": "z", "002_b.sql": "b", "001_a.sql": "a"}
    assert plan(files, {"000_gone.sql": "g"})[0] == ["001_a.sql", "002_b.sql", "010_z.sql"]


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
