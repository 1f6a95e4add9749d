"""Checks shared by manage.py and the WSGI entry point."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

SETTINGS_HELP = (
    "The environment variable DJANGO_SETTINGS_MODULE is required but is not set. "
    "Use ocpizza.settings.production on servers (or settings.production with the "
    "OC_PIZZA configuration directory on PYTHONPATH), ocpizza.settings.dev for "
    "local work, ocpizza.settings.test for the tests."
)


def require_settings_module() -> str:
    """Return DJANGO_SETTINGS_MODULE; raise ImproperlyConfigured when it is unset.

    There is deliberately no default: a server that forgot the variable must
    not silently start with development settings.
    """
    value = os.environ.get("DJANGO_SETTINGS_MODULE", "").strip()
    if not value:
        raise ImproperlyConfigured(SETTINGS_HELP)
    return value
