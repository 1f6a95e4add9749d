"""URL configuration of the tests only: the site's routes plus a view with a bug."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from ocpizza.urls import urlpatterns as site_urlpatterns

FAILING_PATH = "/test-failure"


def fail(request: HttpRequest) -> HttpResponse:
    """A view that raises, as a bug would: Django answers 500."""
    raise RuntimeError("a bug in a view")


urlpatterns = [*site_urlpatterns, path(FAILING_PATH.lstrip("/"), fail, name="fail")]
