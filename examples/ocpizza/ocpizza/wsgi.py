"""WSGI entry point: ``gunicorn ocpizza.wsgi:application``.

DJANGO_SETTINGS_MODULE must be set in the environment (no default).
"""

from __future__ import annotations

from django.core.wsgi import get_wsgi_application

from ocpizza.startup import require_settings_module

require_settings_module()

application = get_wsgi_application()
