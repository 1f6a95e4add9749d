"""Production settings, entry points and deploy commands, each in a fresh interpreter."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase
from ocpizza import conf

APP_DIR = Path(settings.BASE_DIR)
SECRET = "s3cr3t-" + "k" * 30 + "-0123456789abcdefghijklmnopqrstuvwxyz"
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "ocpizza.settings.production",
    "SECRET_KEY": SECRET,
    "DATABASE_URL": "mysql://oc_pizza:p%40ss@127.0.0.1:3306/oc_pizza",
}
DUMP_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
import sentry_sdk
print(json.dumps({
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "CSRF_TRUSTED_ORIGINS": settings.CSRF_TRUSTED_ORIGINS,
    "STATIC_ROOT": str(settings.STATIC_ROOT),
    "OCPIZZA_RELEASE": settings.OCPIZZA_RELEASE,
    "OCPIZZA_RESOURCES_DIR": str(settings.OCPIZZA_RESOURCES_DIR),
    "PAYPAL_CLIENT_ID": settings.PAYPAL_CLIENT_ID,
    "GOOGLE_MAPS_API_KEY": settings.GOOGLE_MAPS_API_KEY,
    "DEBUG": settings.DEBUG,
    "DB": {k: settings.DATABASES["default"][k] for k in ("ENGINE", "NAME", "USER", "PASSWORD")},
    "DB_OPTIONS": settings.DATABASES["default"].get("OPTIONS", {}),
    "SENTRY_ENABLED": settings.SENTRY_ENABLED,
    "SENTRY_ACTIVE": sentry_sdk.get_client().is_active(),
    "SENTRY_RELEASE": sentry_sdk.get_client().options.get("release"),
    "EXTRA": getattr(settings, "OCPIZZA_SITE_NOTE", None),
}))
"""


def python(
    *args: str, env: dict[str, str], cwd: Path = APP_DIR
) -> subprocess.CompletedProcess[str]:
    """Run the virtualenv's Python with only ``env`` (plus PATH) in the environment."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class RequiredEnvironmentTests(SimpleTestCase):
    def test_each_required_variable_is_named_when_missing(self) -> None:
        for name in ("SECRET_KEY", "DATABASE_URL"):
            with self.subTest(name=name):
                env = {k: v for k, v in PRODUCTION_ENV.items() if k != name}
                result = python("manage.py", "check", env=env)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn("ImproperlyConfigured", result.stderr)
                self.assertIn(f"The environment variable {name} is required", result.stderr)

    def test_settings_module_is_required_by_manage_py(self) -> None:
        env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SETTINGS_MODULE"}
        result = python("manage.py", "check", env=env)
        self.assertEqual(result.returncode, 2)
        self.assertIn("DJANGO_SETTINGS_MODULE is required", result.stderr)

    def test_settings_module_is_required_by_wsgi(self) -> None:
        env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SETTINGS_MODULE"}
        result = python("-c", "import ocpizza.wsgi", env=env)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("ImproperlyConfigured", result.stderr)
        self.assertIn("DJANGO_SETTINGS_MODULE is required", result.stderr)

    def test_production_settings_refuse_an_unset_settings_module(self) -> None:
        env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SETTINGS_MODULE"}
        result = python("-c", "import ocpizza.settings.production", env=env)
        self.assertIn("DJANGO_SETTINGS_MODULE is required", result.stderr)

    def test_malformed_database_url_is_named_without_its_password(self) -> None:
        env = {**PRODUCTION_ENV, "DATABASE_URL": "postgresq://u:topsecret@h/db"}
        result = python("manage.py", "check", env=env)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("DATABASE_URL is not a valid database URL", result.stderr)
        self.assertNotIn("topsecret", result.stderr)


class ProductionSettingsTests(SimpleTestCase):
    def test_check_deploy_has_no_warning(self) -> None:
        result = python(
            "manage.py", "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("System check identified no issues", result.stdout)

    def test_environment_is_read(self) -> None:
        env = {
            **PRODUCTION_ENV,
            "ALLOWED_HOSTS": "www.ocpizza.com, ocpizza.com ,",
            "CSRF_TRUSTED_ORIGINS": "https://www.ocpizza.com,https://www.ocpizza.com:8443",
            "STATIC_ROOT": "/srv/ocpizza/static",
            "OCPIZZA_RELEASE": "r42",
            "OCPIZZA_RESOURCES_DIR": "/etc/ocpizza/OC_PIZZA/resources",
            "PAYPAL_CLIENT_ID": "paypal-id",
            "GOOGLE_MAPS_API_KEY": "maps-key",
        }
        result = python("-c", DUMP_SETTINGS, env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        values = json.loads(result.stdout)
        self.assertEqual(values["ALLOWED_HOSTS"], ["www.ocpizza.com", "ocpizza.com"])
        self.assertEqual(
            values["CSRF_TRUSTED_ORIGINS"],
            ["https://www.ocpizza.com", "https://www.ocpizza.com:8443"],
        )
        self.assertEqual(values["STATIC_ROOT"], "/srv/ocpizza/static")
        self.assertEqual(values["OCPIZZA_RELEASE"], "r42")
        self.assertEqual(values["OCPIZZA_RESOURCES_DIR"], "/etc/ocpizza/OC_PIZZA/resources")
        self.assertEqual(values["PAYPAL_CLIENT_ID"], "paypal-id")
        self.assertEqual(values["GOOGLE_MAPS_API_KEY"], "maps-key")
        self.assertFalse(values["DEBUG"])
        self.assertEqual(
            values["DB"],
            {
                "ENGINE": "django.db.backends.mysql",
                "NAME": "oc_pizza",
                "USER": "oc_pizza",
                "PASSWORD": "p@ss",
            },
        )
        self.assertEqual(values["DB_OPTIONS"]["charset"], "utf8mb4")
        self.assertFalse(values["SENTRY_ENABLED"])
        self.assertFalse(values["SENTRY_ACTIVE"])

    def test_sentry_starts_only_with_a_dsn(self) -> None:
        env = {
            **PRODUCTION_ENV,
            "SENTRY_DSN": "http://public@127.0.0.1:9/1",
            "OCPIZZA_RELEASE": "r42",
        }
        values = json.loads(python("-c", DUMP_SETTINGS, env=env).stdout)
        self.assertTrue(values["SENTRY_ENABLED"])
        self.assertTrue(values["SENTRY_ACTIVE"])
        self.assertEqual(values["SENTRY_RELEASE"], "r42")

    def test_external_configuration_directory(self) -> None:
        """<conf>/OC_PIZZA/settings/production.py on PYTHONPATH (operations document §4.1.4)."""
        with tempfile.TemporaryDirectory() as conf_dir:
            settings_dir = Path(conf_dir) / "OC_PIZZA" / "settings"
            settings_dir.mkdir(parents=True)
            (settings_dir / "__init__.py").write_text("")
            (settings_dir / "production.py").write_text(
                "from ocpizza.settings.production import *  # noqa: F403\n"
                'OCPIZZA_SITE_NOTE = "from the configuration directory"\n'
            )
            env = {
                **PRODUCTION_ENV,
                "DJANGO_SETTINGS_MODULE": "settings.production",
                "PYTHONPATH": f"{settings_dir.parent}{os.pathsep}{APP_DIR}",
            }
            check = python("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
            values = json.loads(python("-c", DUMP_SETTINGS, env=env).stdout)
            self.assertEqual(values["EXTRA"], "from the configuration directory")

    def test_collectstatic_writes_to_static_root(self) -> None:
        with tempfile.TemporaryDirectory() as static_root:
            env = {**PRODUCTION_ENV, "STATIC_ROOT": static_root}
            result = python("manage.py", "collectstatic", "--noinput", env=env)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertTrue((Path(static_root) / "admin" / "css" / "base.css").is_file())
            # Hashed copies and their manifest, so the web servers may cache forever.
            manifest = json.loads((Path(static_root) / "staticfiles.json").read_text())
            hashed = manifest["paths"]["admin/css/base.css"]
            self.assertRegex(hashed, r"^admin/css/base\.[0-9a-f]{12}\.css$")
            self.assertTrue((Path(static_root) / hashed).is_file())
            again = python("manage.py", "collectstatic", "--noinput", env=env)
            self.assertIn("0 static files copied", again.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DeployCommandsTests(SimpleTestCase):
    """The deploy sequence on a throw-away SQLite database, then gunicorn."""

    def test_deploy_sequence_and_gunicorn(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **PRODUCTION_ENV,
                "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
                "STATIC_ROOT": f"{tmp}/static",
                "OCPIZZA_RELEASE": "r1",
                "DJANGO_SUPERUSER_USERNAME": "admin",
                "DJANGO_SUPERUSER_PASSWORD": "a long pass phrase",
            }
            for command, first, second in (
                (["migrate", "--noinput"], "Applying shop.0001_initial", "No migrations to apply"),
                (["import_resources"], "Changes written.", "No changes."),
                (["create_admin_if_missing"], "created", "unchanged"),
                # As roles/app's build does: the pages link hashed static files.
                (["collectstatic", "--noinput"], "static files copied", "unmodified"),
            ):
                for expected in (first, second):
                    result = python("manage.py", *command, env=env)
                    self.assertEqual(result.returncode, 0, result.stderr)
                    self.assertIn(expected, result.stdout)

            port = free_port()
            gunicorn = Path(sys.executable).with_name("gunicorn")
            server = subprocess.Popen(
                [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "1",
                 "ocpizza.wsgi:application"],
                cwd=APP_DIR, env={"PATH": os.environ.get("PATH", ""), **env},
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                health = self._get(f"http://127.0.0.1:{port}/healthz", deadline=30)
                self.assertEqual(health[0], 200)
                self.assertEqual(
                    json.loads(health[1]), {"status": "ok", "database": True, "release": "r1"}
                )
                # The health check above used Host: 127.0.0.1, not in ALLOWED_HOSTS.
                home = self._get(f"http://127.0.0.1:{port}/", deadline=5, host="www.ocpizza.com")
                self.assertEqual(home[0], 301, "plain HTTP is redirected to HTTPS")
                self.assertEqual(home[2], "https://www.ocpizza.com/")
                proxied = self._get(
                    f"http://127.0.0.1:{port}/",
                    deadline=5,
                    host="www.ocpizza.com",
                    headers={"X-Forwarded-Proto": "https"},
                )
                self.assertEqual(proxied[0], 200)
                self.assertIn("OC Pizza Bastille", proxied[1])
                self.assertIn("max-age=31536000", proxied[3])
            finally:
                server.terminate()
                server.communicate(timeout=30)

    @staticmethod
    def _get(
        url: str, deadline: float, host: str = "", headers: dict[str, str] | None = None
    ) -> tuple[int, str, str, str]:
        """GET without following redirects: status, body, Location, HSTS header."""

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        request = urllib.request.Request(url, headers=headers or {})
        if host:
            request.add_header("Host", host)
        end = time.monotonic() + deadline
        while True:
            try:
                with opener.open(request, timeout=5) as response:
                    return (
                        response.status,
                        response.read().decode(),
                        response.headers.get("Location", ""),
                        response.headers.get("Strict-Transport-Security", ""),
                    )
            except urllib.error.HTTPError as error:
                return (
                    error.code,
                    error.read().decode(),
                    error.headers.get("Location", ""),
                    error.headers.get("Strict-Transport-Security", ""),
                )
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)


class EnvironmentHelperTests(SimpleTestCase):
    def test_helpers(self) -> None:
        environ = {"A": " x ", "L": "a, b,,c ", "T": "yes", "F": "0", "I": "42", "BAD": "zz"}
        self.assertEqual(conf.env_str("A", environ=environ), "x")
        self.assertEqual(conf.env_str("MISSING", "d", environ=environ), "d")
        self.assertEqual(conf.env_list("L", environ=environ), ["a", "b", "c"])
        self.assertTrue(conf.env_bool("T", False, environ=environ))
        self.assertFalse(conf.env_bool("F", True, environ=environ))
        self.assertTrue(conf.env_bool("MISSING", True, environ=environ))
        self.assertEqual(conf.env_int("I", 0, environ=environ), 42)
        for helper in (conf.env_bool, conf.env_int, conf.env_float):
            with self.assertRaisesMessage(ImproperlyConfigured, "BAD"):
                helper("BAD", 0, environ=environ)
        with self.assertRaisesMessage(ImproperlyConfigured, "MISSING"):
            conf.env_required("MISSING", environ=environ)
