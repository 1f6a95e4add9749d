"""Settings of the OC Pizza Django application."""

from __future__ import annotations

DOCUMENTATION = r"""
name: database_url
short_description: Build the application's DATABASE_URL
description:
  - Returns C(scheme://user:password@host:port/name), the C(DATABASE_URL) the
    OC Pizza application reads (operations document 4.1.3).
  - The user, the password and the database name are percent-encoded, so any
    character works in a password (for example C(p@ss:w/rd#%?&)); the
    application decodes them again (dj-database-url).
  - Every input is checked; an error names the faulty option and never shows
    the password.
positional: _input
options:
  _input:
    description: Host name or IP address of the database server (IPv6 without brackets).
    type: str
    required: true
  user:
    description: Database user.
    type: str
    required: true
  password:
    description: The user's password (not empty).
    type: str
    required: true
  name:
    description: Database name (letters, digits, C(_) and C($), at most 64 characters).
    type: str
    required: true
  port:
    description: TCP port of the database server.
    type: int
    default: 3306
  scheme:
    description: URL scheme, which selects the Django backend.
    type: str
    default: mysql
"""

EXAMPLES = r"""
app_database_url: >-
  {{ '10.0.0.5' | ocpizza_database_url(user='oc_pizza', password=vault_mysql_app_password,
                                       name='oc_pizza', port=3306) }}
# -> mysql://oc_pizza:p%40ss%3Aw%2Frd%23%25%3F%26@10.0.0.5:3306/oc_pizza
"""

RETURN = r"""
_value:
  description: The database URL.
  type: str
"""

import ipaddress
import re
from typing import Any
from urllib.parse import quote

from ansible.errors import AnsibleFilterError

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_DATABASE = re.compile(r"^[A-Za-z0-9_$]{1,64}$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _error(message: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"ocpizza_database_url: {message}")


def _text(value: Any, option: str, *, secret: bool = False) -> str:
    """Return ``value`` if it is a non-empty string without control characters."""
    shown = "a value" if secret else repr(value)
    if not isinstance(value, str):
        raise _error(f"{option} must be a string, got {shown} ({type(value).__name__})")
    if not value:
        raise _error(f"{option} must not be empty")
    if _CONTROL.search(value):
        raise _error(f"{option} must not contain control characters (newline, tab, NUL...)")
    return value


def _host(value: Any) -> str:
    host = _text(value, "host").strip()
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if not _HOSTNAME.match(host):
            raise _error(f"host must be a host name or an IP address, got {value!r}") from None
        return host
    return f"[{address}]" if address.version == 6 else str(address)


def _port(value: Any) -> int:
    error = _error(f"port must be an integer between 1 and 65535, got {value!r}")
    if isinstance(value, bool):
        raise error
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise error from None
    if not isinstance(value, int) and str(port) != str(value).strip():
        raise error
    if not 1 <= port <= 65535:
        raise error
    return port


def database_url(
    host: Any,
    user: Any = None,
    password: Any = None,
    name: Any = None,
    port: Any = 3306,
    scheme: Any = "mysql",
) -> str:
    """Return ``scheme://user:password@host:port/name`` with the parts percent-encoded."""
    scheme_ = _text(scheme, "scheme")
    if not _SCHEME.match(scheme_):
        raise _error(f"scheme must be a URL scheme such as 'mysql', got {scheme!r}")
    user_ = _text(user, "user")
    password_ = _text(password, "password", secret=True)
    name_ = _text(name, "name")
    if not _DATABASE.match(name_):
        raise _error(
            "name must be a database name (letters, digits, '_' and '$', at most 64 "
            f"characters), got {name!r}"
        )
    return (
        f"{scheme_}://{quote(user_, safe='')}:{quote(password_, safe='')}"
        f"@{_host(host)}:{_port(port)}/{quote(name_, safe='')}"
    )


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        """Map filter names to functions."""
        return {"ocpizza_database_url": database_url}
