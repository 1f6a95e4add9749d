"""Error reporting to Sentry (operations document §7)."""

from __future__ import annotations


def init_sentry(
    dsn: str,
    *,
    environment: str = "production",
    release: str = "",
    traces_sample_rate: float = 0.0,
) -> bool:
    """Initialise sentry-sdk with the Django integration when ``dsn`` is set.

    Returns whether Sentry was initialised. Without a DSN nothing is imported
    or started, so the application never talks to Sentry by accident.
    """
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        release=release or None,
        integrations=[DjangoIntegration()],
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
    )
    return True
