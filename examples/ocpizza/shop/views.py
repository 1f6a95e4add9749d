"""Views of the OC Pizza example: home page and health check."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from shop.models import Pizza, Pizzeria, RecipeLine

logger = logging.getLogger(__name__)

# Set by nginx on every proxied request: "0" when the client gets no detail.
HEALTH_DETAIL_HEADER = "X-OCPizza-Health-Detail"


def home(request: HttpRequest) -> HttpResponse:
    """The list of pizzerias and of the pizzas on the menu."""
    pizzas = Pizza.objects.filter(is_available=True).prefetch_related(
        Prefetch("recipe_lines", queryset=RecipeLine.objects.select_related("ingredient"))
    )
    context = {"pizzerias": Pizzeria.objects.all(), "pizzas": pizzas}
    return render(request, "shop/home.html", context)


def database_is_up() -> bool:
    """Whether the default database answers ``SELECT 1``."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            row = cursor.fetchone()
    except Exception:
        logger.warning("Health check: the database does not answer", exc_info=True)
        return False
    return row is not None and row[0] == 1


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Health of this instance: 200 when the database answers, 503 when not.

    No authentication, no redirect and never cached. The detail (the database's
    state and the release) goes to the platform only: nginx sets
    ``X-OCPizza-Health-Detail`` on every request it proxies, replacing any value
    the client sent, to ``1`` for its own host, the web servers and the
    monitoring hosts and to ``0`` for everyone else, who get the bare status
    with the same code. A request without the header did not come through
    nginx: gunicorn is reachable from the web servers and this host only (role
    firewall), as the deploy's and the checks' own requests are.
    """
    database = database_is_up()
    payload: dict[str, object] = {"status": "ok" if database else "error"}
    if request.headers.get(HEALTH_DETAIL_HEADER, "1") != "0":
        payload |= {"database": database, "release": settings.OCPIZZA_RELEASE}
    response = JsonResponse(payload, status=200 if database else 503)
    response["X-Content-Type-Options"] = "nosniff"
    # database_is_up() already logged the cause as a warning: keep Django from
    # logging every failed probe as an ERROR (which Sentry would turn into events).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
