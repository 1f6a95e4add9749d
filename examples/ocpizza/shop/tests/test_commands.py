from __future__ import annotations

import os
from io import StringIO
from unittest import mock

from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase

ENV = {
    "DJANGO_SUPERUSER_USERNAME": "admin",
    "DJANGO_SUPERUSER_PASSWORD": "a long pass phrase",
    "DJANGO_SUPERUSER_EMAIL": "admin@ocpizza.com",
}


def run(env: dict[str, str]) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_SUPERUSER_")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        call_command("create_admin_if_missing", stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


class CreateAdminIfMissingTests(TestCase):
    def test_creates_then_reports_unchanged(self) -> None:
        self.assertEqual(run(ENV)[0], "created")
        user = User.objects.get(username="admin")
        self.assertTrue(user.is_superuser and user.is_staff)
        self.assertTrue(user.check_password("a long pass phrase"))
        self.assertEqual(user.email, "admin@ocpizza.com")

        self.assertEqual(run({**ENV, "DJANGO_SUPERUSER_PASSWORD": "another"})[0], "unchanged")
        user.refresh_from_db()
        self.assertTrue(user.check_password("a long pass phrase"), "password left alone")

    def test_existing_plain_user_is_left_alone_with_a_warning(self) -> None:
        User.objects.create_user("admin", password="x")
        output, errors = run(ENV)
        self.assertEqual(output, "unchanged")
        self.assertIn("not an active superuser", errors)
        self.assertFalse(User.objects.get(username="admin").is_superuser)

    def test_missing_variables_are_named(self) -> None:
        for missing in ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"):
            env = {k: v for k, v in ENV.items() if k != missing}
            with self.assertRaisesMessage(CommandError, missing):
                run(env)
        self.assertFalse(User.objects.exists())

    def test_email_is_optional(self) -> None:
        env = {k: v for k, v in ENV.items() if k != "DJANGO_SUPERUSER_EMAIL"}
        self.assertEqual(run(env)[0], "created")
