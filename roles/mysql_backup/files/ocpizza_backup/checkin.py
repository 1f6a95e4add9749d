"""Monitoring check-in after a scheduled run (healthchecks.io style)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from ocpizza_backup.common import log
from ocpizza_backup.config import Config


def checkin_target(url: str, success: bool) -> str | None:
    """The URL to ping: url on success, url/fail on failure, None when unset."""
    url = url.strip()
    if not url:
        return None
    return url if success else url.rstrip("/") + "/fail"


def checkin(cfg: Config, success: bool) -> bool:
    """GET the check-in URL; never raises, returns whether the ping got through."""
    target = checkin_target(cfg.checkin_url, success)
    if target is None:
        return True
    for attempt in (1, 2, 3):
        try:
            with urllib.request.urlopen(target, timeout=10) as resp:
                resp.read(1024)
            log(f"check-in sent ({'success' if success else 'failure'})")
            return True
        except (urllib.error.URLError, OSError) as exc:
            if attempt == 3:
                log(f"check-in failed: {exc}", "warning")
            else:
                time.sleep(2 * attempt)
    return False
