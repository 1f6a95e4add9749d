#!/usr/bin/env python
"""Django's command-line utility for the OC Pizza example.

DJANGO_SETTINGS_MODULE must be set (e.g. ocpizza.settings.dev locally).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run a management command after checking DJANGO_SETTINGS_MODULE."""
    from django.core.exceptions import ImproperlyConfigured
    from ocpizza.startup import require_settings_module

    try:
        require_settings_module()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"ImproperlyConfigured: {exc}\n")
        sys.exit(2)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
