"""The app's own metrics (django-prometheus): request rate, latency and errors per view.

Prometheus reads them on each app server's gunicorn at the metrics path; the
platform's 5xx alert reads ``django_http_responses_total_by_status_total``.
"""

from __future__ import annotations

from django.test import Client, TestCase, override_settings
from prometheus_client import REGISTRY

from shop.tests.failing_urls import FAILING_PATH
from shop.tests.test_views import PRODUCTION_LIKE

BY_STATUS = "django_http_responses_total_by_status_total"
BY_VIEW = "django_http_requests_total_by_view_transport_method_total"
BY_STATUS_VIEW = "django_http_responses_total_by_status_view_method_total"
LATENCY = "django_http_requests_latency_seconds_by_view_method_count"


def sample(name: str, **labels: str) -> float:
    """The current value of one series (0 when it does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class ViewMetricsTests(TestCase):
    def test_a_request_to_a_view_counts_once_for_that_view(self) -> None:
        view = {"view": "home", "method": "GET"}
        before = (
            sample(BY_VIEW, transport="http", **view),
            sample(BY_STATUS_VIEW, status="200", **view),
            sample(LATENCY, **view),
            sample(BY_STATUS, status="200"),
        )
        self.assertEqual(self.client.get("/").status_code, 200)
        after = (
            sample(BY_VIEW, transport="http", **view),
            sample(BY_STATUS_VIEW, status="200", **view),
            sample(LATENCY, **view),
            sample(BY_STATUS, status="200"),
        )
        self.assertEqual([a - b for a, b in zip(after, before, strict=True)], [1, 1, 1, 1])

    @override_settings(ROOT_URLCONF="shop.tests.failing_urls")
    def test_a_server_error_is_counted_with_status_500(self) -> None:
        before = (
            sample(BY_STATUS, status="500"),
            sample(BY_STATUS_VIEW, status="500", view="fail", method="GET"),
        )
        client = Client(raise_request_exception=False)
        with self.assertLogs("django.request", level="ERROR"):
            response = client.get(FAILING_PATH)
        self.assertEqual(response.status_code, 500)
        after = (
            sample(BY_STATUS, status="500"),
            sample(BY_STATUS_VIEW, status="500", view="fail", method="GET"),
        )
        self.assertEqual([a - b for a, b in zip(after, before, strict=True)], [1, 1])


@override_settings(**PRODUCTION_LIKE)
class MetricsPageTests(TestCase):
    def test_prometheus_reads_the_page_on_gunicorn_with_any_host_over_plain_http(self) -> None:
        self.client.get("/", HTTP_HOST="www.ocpizza.com", HTTP_X_FORWARDED_PROTO="https")
        response = self.client.get("/metrics", HTTP_HOST="10.0.0.5:8000")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain"))
        page = response.content.decode()
        # The name the platform's 5xx alert rule reads.
        self.assertIn(f'{BY_STATUS}{{status="200"}}', page)
        self.assertIn(f'{BY_VIEW}{{method="GET",transport="https",view="home"}}', page)

    def test_the_page_is_not_served_to_a_request_that_came_through_nginx(self) -> None:
        # nginx answers 404 itself; should a request reach the app through it
        # anyway (it always sets X-Forwarded-For), the app does not serve it.
        for path in ("/metrics", "/metrics/"):
            response = self.client.get(
                path,
                HTTP_HOST="www.ocpizza.com",
                HTTP_X_FORWARDED_PROTO="https",
                HTTP_X_FORWARDED_FOR="203.0.113.9",
            )
            self.assertEqual(response.status_code, 404, path)
            self.assertNotIn(BY_STATUS, response.content.decode(errors="replace"))

    @override_settings(OCPIZZA_METRICS_PATH="/internal/metrics")
    def test_the_path_is_the_configured_one(self) -> None:
        self.assertEqual(
            self.client.get("/internal/metrics", HTTP_HOST="10.0.0.5:8000").status_code, 200
        )
        self.assertEqual(self.client.get("/metrics", HTTP_HOST="10.0.0.5:8000").status_code, 400)
