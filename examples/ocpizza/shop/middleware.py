"""Middleware answering health checks and metrics scrapes before anything else runs."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_prometheus.exports import ExportToDjangoView

from shop.views import healthz

HEALTH_PATHS = frozenset({"/healthz", "/healthz/"})


class HealthCheckMiddleware:
    """Serve ``/healthz`` ahead of host validation and the HTTPS redirect.

    A load balancer or the deploy playbook probes gunicorn directly, over
    plain HTTP, with whatever Host header it has (often an IP address).
    Going through the usual middleware would answer 400 (host not in
    ALLOWED_HOSTS) or 301 (redirect to HTTPS) instead of the health.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in HEALTH_PATHS:
            return healthz(request)
        return self.get_response(request)


class MetricsMiddleware:
    """Serve the app's Prometheus metrics on ``settings.OCPIZZA_METRICS_PATH``.

    Prometheus scrapes each app server's gunicorn directly, over plain HTTP,
    with the server's address as Host: like ``/healthz``, the page is answered
    ahead of host validation and the HTTPS redirect. It is never public:
    nginx answers 404 for the path, and a request that came through nginx
    anyway (it carries ``X-Forwarded-For``, which nginx always sets) goes on
    to the URL routes, where the path does not exist (404). Only the
    platform's own hosts reach gunicorn directly (host and cloud firewalls).

    Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` (set by the gunicorn
    configuration) makes the page add up every worker's counts, those of
    workers that have exited included, so that it does not depend on which
    worker answers the scrape.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.path_info == settings.OCPIZZA_METRICS_PATH
            and "x-forwarded-for" not in request.headers
        ):
            return ExportToDjangoView(request)
        return self.get_response(request)
