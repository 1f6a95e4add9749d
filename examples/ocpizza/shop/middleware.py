"""Middleware answering health checks before anything else runs."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
