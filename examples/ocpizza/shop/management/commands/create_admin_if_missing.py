"""``manage.py create_admin_if_missing``: an idempotent ``createsuperuser``."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction


class Command(BaseCommand):
    help = (
        "Create the superuser named by DJANGO_SUPERUSER_USERNAME (password "
        "DJANGO_SUPERUSER_PASSWORD, e-mail DJANGO_SUPERUSER_EMAIL) unless a user of that "
        "name exists; an existing user is never modified. Prints 'created' or 'unchanged'."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        username = self._env("DJANGO_SUPERUSER_USERNAME")
        password = self._env("DJANGO_SUPERUSER_PASSWORD", strip=False)
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "").strip()
        user_model = get_user_model()
        field = user_model.USERNAME_FIELD
        with transaction.atomic():
            existing = user_model._default_manager.filter(**{field: username}).first()
            if existing is not None:
                if not (existing.is_superuser and existing.is_staff and existing.is_active):
                    self.stderr.write(
                        f"warning: user {username!r} exists but is not an active superuser; "
                        "left unchanged"
                    )
                self.stdout.write("unchanged")
                return
            user_model._default_manager.create_superuser(
                **{field: username}, email=email, password=password
            )
        self.stdout.write("created")

    @staticmethod
    def _env(name: str, *, strip: bool = True) -> str:
        value = os.environ.get(name, "")
        if strip:
            value = value.strip()
        if not value:
            raise CommandError(f"The environment variable {name} is required but is not set.")
        return value
