"""A real headless Chromium for the platform tests, driven through selenium.

Usage in a platform test::

    from browserclient import chromium

    with chromium(ca=platform.ca, resolve={"www.ocpizza.com": "127.0.0.1"},
                  shots=LOGS / "browser") as browser:
        browser.get(platform.site + "/")
        browser.shot("01-home")                 # .../browser/01-home.png
        assert browser.problems() == []         # CSP violations + console errors

Chromium is Debian's ``chromium`` with its ``chromium-driver``; the site's name
is resolved to the load balancer's published port with
``--host-resolver-rules`` (as loadclient.py does with curl's ``--resolve``),
and the lab CA is trusted the way a workstation would trust it: imported into
a private NSS database (``certutil``, Debian's ``libnss3-tools``) in a
temporary HOME. Certificate errors are never ignored, so a page that loads
proves the certificate chain too.

Every document gets, before any of its own content, a listener that records
its Content-Security-Policy violations (CDP
``Page.addScriptToEvaluateOnNewDocument``); :meth:`Browser.problems` returns
them with the console's errors (the browser log also reports what the CSP
blocked, and failed loads). Missing programs fail the test with what to
install: a browser test that silently skips proves nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# How long any one wait may take (a page, an element, a redirect).
WAIT = float(os.environ.get("OCPIZZA_BROWSER_WAIT", "15"))

INSTALL_HINT = (
    "the browser test needs Debian's chromium, chromium-driver and libnss3-tools "
    "(scripts/setup.sh installs them) and selenium (requirements.txt)"
)

# Records every CSP violation of the document, before the page's own content runs.
CSP_LISTENER = """
window.__ocpizzaCsp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__ocpizzaCsp.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')
    + ' at ' + e.documentURI + (e.sample ? ' (' + e.sample + ')' : ''));
}, true);
"""


def programs() -> dict[str, str]:
    """The paths of chromium, chromedriver and certutil; fails naming what is missing."""
    import pytest

    found = {name: shutil.which(name) for name in ("chromium", "chromedriver", "certutil")}
    missing = sorted(name for name, path in found.items() if not path)
    if missing:
        pytest.fail(f"{', '.join(missing)} not found on PATH: {INSTALL_HINT}", pytrace=False)
    return {name: str(path) for name, path in found.items()}


def trust_ca(home: Path, ca: Path, certutil: str) -> None:
    """A private NSS database under ``home`` (Chromium's ~/.pki/nssdb) trusting ``ca``."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    for cmd in (
        [certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"],
        [certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "ocpizza-lab-ca", "-i", str(ca)],
    ):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        assert res.returncode == 0, f"{' '.join(cmd)}: {res.stdout}{res.stderr}"


@dataclass
class Browser:
    """A selenium driver plus what the test collects: screenshots and problems."""

    driver: Any
    shots: Path
    taken: list[Path] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def get(self, url: str) -> None:
        """Open ``url`` and wait until the document is complete."""
        self.driver.get(url)
        self.wait_ready()

    def wait_ready(self) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, WAIT).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )

    def wait_true(self, script: str, message: str) -> None:
        """Wait (at most WAIT seconds) until ``script`` returns true in the page."""
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, WAIT).until(lambda d: d.execute_script(script), message)

    def wait_for(self, css: str) -> Any:
        """The element ``css`` once it is visible (at most WAIT seconds)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, css)),
            f"no visible {css!r} within {WAIT:.0f} s on {self.driver.current_url}",
        )

    def click_and_load(self, css: str) -> None:
        """Click ``css`` (a submit button) and wait for the next document to be complete."""
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        before = self.driver.find_element("tag name", "html")
        self.collect()  # the leaving page's violations, before they are lost
        self.wait_for(css).click()
        WebDriverWait(self.driver, WAIT).until(
            ec.staleness_of(before), f"clicking {css!r} loaded no new page within {WAIT:.0f} s"
        )
        self.wait_ready()

    def shot(self, name: str) -> Path:
        """Save a screenshot as <shots>/<name>.png (name: "NN-<step>")."""
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot written to {path}"
        self.taken.append(path)
        return path

    @contextmanager
    def shot_on_failure(self, name: str) -> Iterator[None]:
        """On an exception in the block, a screenshot <shots>/<name>.png of where it stopped."""
        try:
            yield
        except BaseException:
            try:
                self.shot(name)
            except Exception:  # the browser itself may be what failed
                pass
            raise

    def collect(self) -> None:
        """Keep the current document's CSP violations and the console's errors so far."""
        found = [
            f"CSP: {v}" for v in self.driver.execute_script("return window.__ocpizzaCsp || []")
        ]
        self.driver.execute_script("window.__ocpizzaCsp = []")
        found += [
            f"console {entry['level']}: {entry['message']}"
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE"
        ]
        self.pending.extend(found)

    def problems(self) -> list[str]:
        """CSP violations and console errors since the last call, across page loads."""
        self.collect()
        found, self.pending = self.pending, []
        return found


@contextmanager
def chromium(ca: Path | None, resolve: dict[str, str], shots: Path) -> Iterator[Browser]:
    """A headless Chromium trusting ``ca``, resolving ``resolve``'s names; always quit."""
    import pytest

    paths = programs()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.fail(f"selenium cannot be imported ({exc}): {INSTALL_HINT}", pytrace=False)

    if shots.exists():
        shutil.rmtree(shots)  # this run's screenshots only
    with tempfile.TemporaryDirectory(prefix="ocpizza-browser-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        if ca is not None:
            trust_ca(home, ca, paths["certutil"])
        options = webdriver.ChromeOptions()
        options.binary_location = paths["chromium"]
        rules = ", ".join(f"MAP {name} {addr}" for name, addr in resolve.items())
        for arg in (
            "--headless=new",
            "--no-sandbox",  # Chromium refuses to start as root (make test runs as root) with it
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,1000",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--host-resolver-rules={rules}",
            "--no-proxy-server",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--lang=en-US",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        env = {**os.environ, "HOME": str(home)}
        service = Service(
            executable_path=paths["chromedriver"],
            env=env,
            log_output=str(Path(tmp) / "chromedriver.log"),
        )
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.set_page_load_timeout(WAIT * 2)
            driver.execute_cdp_cmd(
                "Page.addScriptToEvaluateOnNewDocument", {"source": CSP_LISTENER}
            )
            yield Browser(driver=driver, shots=shots)
        finally:
            driver.quit()
