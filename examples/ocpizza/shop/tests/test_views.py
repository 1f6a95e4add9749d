from __future__ import annotations

import json
from unittest import mock

from django.db import OperationalError
from django.test import TestCase, override_settings

from shop.tests.factories import make_margherita, make_pizzeria

PRODUCTION_LIKE = {
    "ALLOWED_HOSTS": ["www.ocpizza.com"],
    "SECURE_SSL_REDIRECT": True,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SECURE_REDIRECT_EXEMPT": [r"^healthz/?$"],
}


class HealthzTests(TestCase):
    def test_ok_when_database_answers(self) -> None:
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(
            json.loads(response.content),
            {"status": "ok", "database": True, "release": "test-release"},
        )
        self.assertIn("no-store", response["Cache-Control"])

    def test_503_when_database_fails(self) -> None:
        with (
            mock.patch(
                "django.db.backends.base.base.BaseDatabaseWrapper.cursor",
                side_effect=OperationalError("connection refused"),
            ),
            self.assertLogs("shop.views", level="WARNING"),
            self.assertNoLogs("django.request", level="ERROR"),
        ):
            response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(
            json.loads(response.content),
            {"status": "error", "database": False, "release": "test-release"},
        )
        self.assertIn("no-store", response["Cache-Control"])

    @override_settings(OCPIZZA_RELEASE="2026.11.29-abc1234")
    def test_reports_release(self) -> None:
        response = self.client.get("/healthz")
        self.assertEqual(json.loads(response.content)["release"], "2026.11.29-abc1234")

    @override_settings(**PRODUCTION_LIKE)
    def test_plain_http_probe_with_any_host_is_not_redirected(self) -> None:
        for path in ("/healthz", "/healthz/"):
            response = self.client.get(path, HTTP_HOST="10.0.0.5:8000")
            self.assertEqual(response.status_code, 200, path)
            self.assertTrue(json.loads(response.content)["database"])
        head = self.client.head("/healthz", HTTP_HOST="10.0.0.5:8000")
        self.assertEqual(head.status_code, 200)

    @override_settings(**PRODUCTION_LIKE)
    def test_other_pages_still_redirect_to_https(self) -> None:
        response = self.client.get("/", HTTP_HOST="www.ocpizza.com")
        self.assertEqual(response.status_code, 301)
        self.assertEqual(response["Location"], "https://www.ocpizza.com/")
        behind_proxy = self.client.get(
            "/", HTTP_HOST="www.ocpizza.com", HTTP_X_FORWARDED_PROTO="https"
        )
        self.assertEqual(behind_proxy.status_code, 200)

    def test_post_is_refused(self) -> None:
        self.assertEqual(self.client.post("/healthz").status_code, 405)

    @override_settings(OCPIZZA_RELEASE="2026.11.29-abc1234")
    def test_the_public_gets_a_bare_status_without_release_or_database(self) -> None:
        # nginx says "0" for a client outside the platform (issue 15, finding 14).
        for path in ("/healthz", "/healthz/"):
            response = self.client.get(path, HTTP_X_OCPIZZA_HEALTH_DETAIL="0")
            self.assertEqual(response.status_code, 200)
            self.assertEqual(json.loads(response.content), {"status": "ok"})
            self.assertNotIn(b"2026.11.29-abc1234", response.content)
        with (
            mock.patch(
                "django.db.backends.base.base.BaseDatabaseWrapper.cursor",
                side_effect=OperationalError("connection refused"),
            ),
            self.assertLogs("shop.views", level="WARNING"),
        ):
            down = self.client.get("/healthz", HTTP_X_OCPIZZA_HEALTH_DETAIL="0")
        self.assertEqual(down.status_code, 503)  # the same code as with the detail
        self.assertEqual(json.loads(down.content), {"status": "error"})

    @override_settings(OCPIZZA_RELEASE="2026.11.29-abc1234")
    def test_the_platform_gets_the_detail(self) -> None:
        # nginx says "1" for its own host, the web servers and the monitoring
        # hosts; a request straight to gunicorn (the deploy's check) has no header.
        for headers in ({"HTTP_X_OCPIZZA_HEALTH_DETAIL": "1"}, {}):
            response = self.client.get("/healthz", **headers)
            self.assertEqual(
                json.loads(response.content),
                {"status": "ok", "database": True, "release": "2026.11.29-abc1234"},
            )


class PageTests(TestCase):
    def test_home_lists_pizzerias_and_pizzas(self) -> None:
        make_pizzeria("OC Pizza Bastille")
        make_margherita()
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "OC Pizza Bastille")
        self.assertContains(response, "Margherita")
        self.assertContains(response, "Mozzarella")

    def test_home_without_data(self) -> None:
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Aucune pizzeria")

    def test_admin_asks_anonymous_users_to_log_in(self) -> None:
        response = self.client.get("/admin/")
        self.assertEqual(response.status_code, 302)
        self.assertIn("/admin/login/", response["Location"])

    def test_admin_lists_every_model(self) -> None:
        from django.contrib.auth.models import User

        User.objects.create_superuser("boss", "boss@example.com", "pw")
        self.client.login(username="boss", password="pw")
        make_pizzeria()
        make_margherita()
        for model in ("pizzeria", "ingredient", "pizza", "recipeline", "stock", "order"):
            for suffix in ("", "add/"):
                url = f"/admin/shop/{model}/{suffix}"
                self.assertEqual(self.client.get(url).status_code, 200, url)
        self.assertEqual(self.client.get("/admin/shop/orderline/").status_code, 200)
