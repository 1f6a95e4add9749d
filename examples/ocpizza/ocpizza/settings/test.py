"""Settings for the test suite: SQLite (in memory during tests), fast hashing."""

from __future__ import annotations

from ocpizza.settings.base import *  # noqa: F403
from ocpizza.settings.base import BASE_DIR

DEBUG = False
SECRET_KEY = "django-insecure-ocpizza-tests-only"
ALLOWED_HOSTS = ["testserver", "localhost", "www.ocpizza.com"]

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "test.sqlite3"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
OCPIZZA_RELEASE = "test-release"
LOGGING = {"version": 1, "disable_existing_loggers": False}
TEST_RUNNER = "ocpizza.test_runner.QuietTeardownRunner"
