"""Local development settings: SQLite file next to manage.py, DEBUG on. Never deploy."""

from __future__ import annotations

from ocpizza.conf import database_from_url, env_list, env_str
from ocpizza.settings.base import *  # noqa: F403
from ocpizza.settings.base import BASE_DIR

DEBUG = True
SECRET_KEY = "django-insecure-ocpizza-local-development-only"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

_database_url = env_str("DATABASE_URL")
DATABASES = {
    "default": (
        database_from_url(_database_url, conn_max_age=0)
        if _database_url
        else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
    )
}
