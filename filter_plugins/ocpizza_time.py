"""Times an operator types on the command line (restore.yml -e until=...)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

DOCUMENTATION = r"""
name: utc_time
short_description: Check a UTC time typed by an operator against the calendar
description:
  - Returns the time as C(YYYY-MM-DD HH:MM:SS) when it is one, or an empty
    string when it is not, so that an C(assert) can refuse it with a message
    that names the variable.
  - A C(T) between the date and the time is accepted
    (C(2026-11-29T14:03:00), which needs no quoting on the command line).
  - The calendar is checked, not only the shape - C(2026-11-31 14:03:00) or
    C(2027-02-29 00:00:00) are refused - as the backup tool on the database
    host does.
positional: _input
options:
  _input:
    description: The time as typed.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse a malformed point in time
  ansible.builtin.assert:
    that: until | ocpizza_utc_time != ''
    fail_msg: "until must be a UTC time 'YYYY-MM-DD HH:MM:SS' (got '{{ until }}')"
"""

RETURN = r"""
_value:
  description: The time as C(YYYY-MM-DD HH:MM:SS), or an empty string if it is not a valid one.
  type: str
"""

_SHAPE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$")
_FORMAT = "%Y-%m-%d %H:%M:%S"


def utc_time(value: Any) -> str:
    """Return ``value`` as 'YYYY-MM-DD HH:MM:SS' if it is a real calendar time, else ''."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if not _SHAPE.match(text):
        return ""
    text = text[:10] + " " + text[11:]
    try:
        parsed = dt.datetime.strptime(text, _FORMAT)
    except ValueError:
        return ""
    return parsed.strftime(_FORMAT)


class FilterModule:
    """OC Pizza time filters."""

    def filters(self) -> dict[str, Any]:
        """Map filter names to functions."""
        return {"ocpizza_utc_time": utc_time}
