"""Reading a mysqldump stream: row counts, binary log position, completion."""

from __future__ import annotations

import re

# A quoted SQL string as mysqldump writes it ('...' with backslash escapes).
# Written as an "unrolled loop" so that it runs in linear time on any input.
_STRING = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'", re.DOTALL)
_TOKEN = re.compile(
    rb"^(?:INSERT INTO `(?P<insert>(?:[^`]|``)+)` VALUES ?"
    rb"|CREATE TABLE `(?P<create>(?:[^`]|``)+)` \("
    rb"|(?P<delim>DELIMITER ;;)$"
    rb"|-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='(?P<binfile>[^']+)',"
    rb" (?:MASTER|SOURCE)_LOG_POS=(?P<binpos>\d+)"
    rb"|-- SET GLOBAL gtid_slave_pos='(?P<gtid>[^']*)'"
    rb"|(?P<done>-- Dump completed))",
    re.MULTILINE,
)
_DELIM_END = re.compile(rb"^DELIMITER ;$", re.MULTILINE)


def _unquote_name(raw: bytes) -> str:
    return raw.replace(b"``", b"`").decode("utf-8", "replace")


def count_rows(values: bytes) -> int:
    """Rows in a piece of the VALUES list of mysqldump INSERT statements.

    Outside quoted strings a VALUES list holds numbers, NULL, 0x… literals,
    commas and the parentheses of its rows, so every "(" left once the strings
    are removed opens one row. Strings never span lines (mysqldump escapes
    newlines), so any run of whole lines can be counted on its own.
    """
    return _STRING.sub(b"", values).count(b"(")


class DumpScanner:
    """Follow a mysqldump stream chunk by chunk and describe what it holds.

    ``tables`` maps every base table (``CREATE TABLE``) to the number of rows
    its INSERT statements carry: an exact count of what the dump restores.
    Trigger, routine and event bodies (between ``DELIMITER ;;`` and
    ``DELIMITER ;``) are skipped, so SQL text inside them is never counted.
    Works with both one-line extended INSERTs and MariaDB's one row per line.
    """

    def __init__(self) -> None:
        self.tables: dict[str, int] = {}
        self.binlog_file: str | None = None
        self.binlog_position: int | None = None
        self.gtid: str | None = None
        self.completed = False
        self.bytes = 0
        self._pending = b""
        self._table: str | None = None
        self._in_delimiter = False

    def feed(self, data: bytes) -> None:
        """Take the next piece of the stream."""
        self.bytes += len(data)
        buf = self._pending + data if self._pending else data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            self._pending = bytes(buf)
            return
        self._pending = bytes(buf[cut:])
        self._scan(bytes(buf[:cut]))

    def close(self) -> None:
        """The stream ended: scan what is left of the last line."""
        if self._pending:
            self._scan(self._pending)
            self._pending = b""

    def _scan(self, text: bytes) -> None:
        pos, end = 0, len(text)
        while pos < end:
            if self._table is not None:
                stop = text.find(b");\n", pos)
                if stop < 0 and text.endswith(b");"):
                    stop = end - 2
                upto = end if stop < 0 else stop + 2
                self.tables[self._table] = self.tables.get(self._table, 0) + count_rows(
                    text[pos:upto]
                )
                if stop < 0:
                    return
                self._table, pos = None, upto
                continue
            if self._in_delimiter:
                m = _DELIM_END.search(text, pos)
                if m is None:
                    return
                self._in_delimiter, pos = False, m.end()
                continue
            m = _TOKEN.search(text, pos)
            if m is None:
                return
            pos = m.end()
            if m.group("insert") is not None:
                self._table = _unquote_name(m.group("insert"))
                self.tables.setdefault(self._table, 0)
            elif m.group("create") is not None:
                self.tables.setdefault(_unquote_name(m.group("create")), 0)
            elif m.group("delim") is not None:
                self._in_delimiter = True
            elif m.group("binfile") is not None:
                self.binlog_file = m.group("binfile").decode()
                self.binlog_position = int(m.group("binpos"))
            elif m.group("gtid") is not None:
                self.gtid = m.group("gtid").decode()
            elif m.group("done") is not None:
                self.completed = True
