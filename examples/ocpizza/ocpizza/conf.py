"""Helpers that read the application's configuration from the environment.

Every helper raises ``ImproperlyConfigured`` with the variable's name when a
value is missing or malformed, so a misconfigured deploy stops at start-up
with a message an operator can act on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    """Return the variable's value, stripped, or ``default`` when unset or empty."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or default


def env_required(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Return the variable's value; raise ImproperlyConfigured when unset or empty."""
    value = env_str(name, environ=environ)
    if not value:
        raise ImproperlyConfigured(
            f"The environment variable {name} is required but is not set (or is empty)."
        )
    return value


def env_list(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> list[str]:
    """Return a comma-separated variable as a list, ignoring blanks."""
    raw = env_str(name, default, environ=environ)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Return a boolean variable (1/0, true/false, yes/no, on/off)."""
    raw = env_str(name, environ=environ).lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"The environment variable {name} must be a boolean, got {raw!r}.")


def env_int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """Return an integer variable."""
    raw = env_str(name, environ=environ)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"The environment variable {name} must be an integer, got {raw!r}."
        ) from None


def env_float(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """Return a floating-point variable."""
    raw = env_str(name, environ=environ)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"The environment variable {name} must be a number, got {raw!r}."
        ) from None


def use_pymysql() -> None:
    """Let Django's MySQL backend run on PyMySQL (pure Python) instead of mysqlclient.

    Django imports ``MySQLdb`` and refuses versions older than mysqlclient's
    1.4.3 (``version_info``); PyMySQL 1.2 reports a mysqlclient-compatible
    ``version_info`` (2.2.x), so no version patching is needed here.
    """
    import pymysql

    pymysql.install_as_MySQLdb()


def database_from_url(
    url: str,
    *,
    conn_max_age: int = 60,
    name: str = "DATABASE_URL",
) -> dict[str, Any]:
    """Turn a database URL into a Django ``DATABASES`` entry.

    ``mysql://user:password@host:3306/oc_pizza`` uses PyMySQL, utf8mb4 and
    strict mode; ``sqlite:////absolute/path.sqlite3`` is accepted too (labs,
    tests). The password never appears in an error message.
    """
    import dj_database_url

    scheme = url.split("://", 1)[0] if "://" in url else ""
    try:
        config: dict[str, Any] = dict(
            dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
        )
    except Exception as exc:  # dj-database-url raises ValueError and its own errors
        raise ImproperlyConfigured(
            f"The environment variable {name} is not a valid database URL "
            f"(scheme {scheme!r}; expected e.g. mysql://user:password@host:3306/oc_pizza): "
            f"{type(exc).__name__}"
        ) from None
    engine = str(config.get("ENGINE", ""))
    if not engine or not config.get("NAME"):
        raise ImproperlyConfigured(
            f"The environment variable {name} must name a database "
            "(e.g. mysql://user:password@host:3306/oc_pizza)."
        )
    if engine == "django.db.backends.mysql":
        use_pymysql()
        options = dict(config.get("OPTIONS") or {})
        options.setdefault("charset", "utf8mb4")
        options.setdefault("init_command", "SET sql_mode='STRICT_TRANS_TABLES'")
        config["OPTIONS"] = options
    return config
