"""Settings shared by every environment. Environment-specific modules import this."""

from __future__ import annotations

from pathlib import Path

from ocpizza.conf import env_str

# examples/ocpizza/ (the directory holding manage.py)
BASE_DIR = Path(__file__).resolve().parent.parent.parent

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "shop",
]

MIDDLEWARE = [
    # First: answers /healthz before host validation and the HTTPS redirect,
    # so a health checker can probe gunicorn directly over plain HTTP.
    "shop.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ocpizza.urls"
WSGI_APPLICATION = "ocpizza.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# Where `collectstatic` writes; nginx serves this directory under /static/.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- OC Pizza specific -------------------------------------------------------
# Release identifier shown by /healthz (e.g. the deployed git commit).
OCPIZZA_RELEASE = env_str("OCPIZZA_RELEASE", "unknown")
# Directory of the starting-data Excel files read by `manage.py import_resources`.
OCPIZZA_RESOURCES_DIR = Path(env_str("OCPIZZA_RESOURCES_DIR", str(BASE_DIR / "resources")))
# Web services (operations document §3.3); optional, empty when not configured.
PAYPAL_CLIENT_ID = env_str("PAYPAL_CLIENT_ID")
PAYPAL_CLIENT_SECRET = env_str("PAYPAL_CLIENT_SECRET")
GOOGLE_MAPS_API_KEY = env_str("GOOGLE_MAPS_API_KEY")

# Logs go to the console (stderr), where gunicorn/supervisor collect them.
LOG_LEVEL = env_str("DJANGO_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}

# --- Metrics for Prometheus (django-prometheus) ---------------------------------
# Request rate, latency and responses by status per view: django-prometheus's
# middleware pair wraps every other one (its documented order), so that each
# view's time and answer, a 500 from an exception included, is counted. The
# metrics page is shop.middleware.MetricsMiddleware, first of all: Prometheus
# scrapes each app server's gunicorn directly (the platform contract's
# ocpizza_app_metrics_path); nginx never serves it. Under gunicorn the
# workers share their counts through PROMETHEUS_MULTIPROC_DIR (set by the
# gunicorn configuration of role gunicorn, cleaned at each start).
INSTALLED_APPS = [*INSTALLED_APPS, "django_prometheus"]
MIDDLEWARE = [
    "shop.middleware.MetricsMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    *MIDDLEWARE,
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# Path of the metrics page (the platform contract's ocpizza_app_metrics_path).
OCPIZZA_METRICS_PATH = env_str("OCPIZZA_METRICS_PATH", "/metrics")
# No database query at start-up to count unapplied migrations.
PROMETHEUS_EXPORT_MIGRATIONS = False
