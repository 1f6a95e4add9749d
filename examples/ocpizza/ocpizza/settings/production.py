"""Production settings: every value comes from the environment.

Required: ``DJANGO_SETTINGS_MODULE``, ``SECRET_KEY``, ``DATABASE_URL``
(operations document §4.1.3). A missing one raises ImproperlyConfigured
naming it. The site runs behind nginx, which terminates TLS and sets
``X-Forwarded-Proto``.

The operations document (§4.1.4) keeps the main settings file in
``$home_application_conf_directory/OC_PIZZA/settings/production.py``. With
that directory on ``PYTHONPATH`` and ``DJANGO_SETTINGS_MODULE=settings.production``
the external file only needs::

    from ocpizza.settings.production import *  # noqa: F403

followed by any site-specific overrides.
"""

from __future__ import annotations

from ocpizza.conf import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_required,
    env_str,
)
from ocpizza.observability import init_sentry
from ocpizza.settings.base import *  # noqa: F403

# Checked here too so that importing these settings by any route
# (gunicorn, manage.py, a shell) fails the same clear way.
DJANGO_SETTINGS_MODULE = env_required("DJANGO_SETTINGS_MODULE")
SECRET_KEY = env_required("SECRET_KEY")
DATABASES = {
    "default": database_from_url(
        env_required("DATABASE_URL"), conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60)
    )
}

DEBUG = False

# Static files are collected with a content hash in their names
# (admin/css/base.css -> admin/css/base.<hash>.css) and a manifest
# (STATIC_ROOT/staticfiles.json) that {% static %} reads: the web servers can
# cache them forever (Cache-Control: immutable), and the files of the previous
# release can stay beside the new ones during a rolling deploy.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
    },
}

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "www.ocpizza.com")
# Full origins, e.g. "https://www.ocpizza.com,https://www.ocpizza.com:8443".
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- HTTPS behind a TLS-terminating reverse proxy ------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Health checks probe gunicorn directly over plain HTTP: never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# --- Monitoring (operations document §7) ---------------------------------------
SENTRY_DSN = env_str("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "production")
SENTRY_RELEASE = env_str("SENTRY_RELEASE", env_str("OCPIZZA_RELEASE"))
SENTRY_ENABLED = init_sentry(
    SENTRY_DSN,
    environment=SENTRY_ENVIRONMENT,
    release=SENTRY_RELEASE,
    traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0),
)
