"""The site in a real browser (issue 16): headless Chromium through the load balancer.

As a person would: the home page renders styled (its stylesheet loaded) with
no Content-Security-Policy violation and no console error; an admin logs in at
/admin/ with the generated password, creates an order, sees it listed and logs
out. The only change left on the lab is that order.

Chromium reaches https://www.ocpizza.com:<published port> resolved to
127.0.0.1 and trusts the lab CA from a private NSS database
(tests/platform/browserclient.py). A screenshot of every step is kept in
.ansible/logs[/<prefix>]/browser/NN-<step>.png.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import yaml
from browserclient import Browser, chromium
from conftest import LOGS, Platform

SHOTS = LOGS / "browser"
# What examples/ocpizza/shop/static/shop/home.css sets (h1 { color: #b22222 }).
STYLED_H1 = "rgb(178, 34, 34)"
# The stylesheet as ManifestStaticFilesStorage names it: content hash in the name.
HASHED_CSS = re.compile(r"/static/shop/home\.[0-9a-f]{12}\.css$")
# Django's admin pages name no icon, so the browser probes /favicon.ico, which the
# site does not serve (the home page names its own icon and is held to zero errors).
FAVICON_PROBE = re.compile(r"/favicon\.ico - Failed to load resource: .* status of 404\b")

PAGE_STYLE = """
const sheets = [...document.styleSheets].map(s => {
  let rules = -1;
  try { rules = s.cssRules.length; } catch (e) {}
  return {href: s.href || '', rules: rules};
});
const loads = performance.getEntriesByType('resource')
  .filter(e => e.initiatorType === 'link')
  .map(e => ({url: e.name, status: e.responseStatus}));
return {
  h1: getComputedStyle(document.querySelector('h1')).color,
  sheets: sheets,
  loads: loads,
};
"""


@pytest.fixture(scope="module")
def browser(platform: Platform) -> Iterator[Browser]:
    with chromium(ca=platform.ca, resolve={"www.ocpizza.com": "127.0.0.1"}, shots=SHOTS) as b:
        yield b


def admin_problems(browser: Browser) -> list[str]:
    """The problems of the admin pages, but for the browser's own /favicon.ico probe."""
    return [p for p in browser.problems() if not FAVICON_PROBE.search(p)]


def test_home_page_is_styled_without_csp_violations(platform: Platform, browser: Browser) -> None:
    with browser.shot_on_failure("01-home-failed"):
        browser.get(platform.site + "/")
        browser.wait_for("h1")
        page = browser.driver.execute_script(PAGE_STYLE)
        browser.shot("01-home")
        problems = browser.problems()
        sheets = [s for s in page["sheets"] if HASHED_CSS.search(s["href"])]
        assert sheets, f"the home page links no hashed shop/home.css: {page['sheets']}"
        assert all(s["rules"] > 0 for s in sheets), (
            f"the stylesheet is empty or unreadable: {sheets}"
        )
        loads = [entry for entry in page["loads"] if HASHED_CSS.search(entry["url"])]
        assert loads and all(entry["status"] == 200 for entry in loads), (
            f"the stylesheet request did not succeed: {page['loads']}"
        )
        assert page["h1"] == STYLED_H1, f"h1 is {page['h1']}, not the stylesheet's {STYLED_H1}"
        assert problems == [], "the home page has CSP violations or console errors:\n" + "\n".join(
            problems
        )

        # The detector itself: an inline <style> added now must be blocked and reported,
        # so "no violation" above means the policy is enforced and nothing broke it.
        browser.driver.execute_script(
            "document.head.insertAdjacentHTML('beforeend', '<style>h1 { color: blue; }</style>')"
        )
        browser.wait_true(
            "return window.__ocpizzaCsp.length > 0",
            "an inline <style> added to the page was not reported as a CSP violation",
        )
        caught = browser.problems()
        assert any(p.startswith("CSP: style-src") for p in caught), (
            f"an inline <style> was not reported as a CSP violation: {caught}"
        )
        assert browser.driver.execute_script(PAGE_STYLE)["h1"] == STYLED_H1, (
            "an inline style applied"
        )


def test_admin_logs_in_creates_an_order_sees_it_listed_and_logs_out(
    platform: Platform, browser: Browser
) -> None:
    with browser.shot_on_failure("99-admin-failed"):
        app = yaml.safe_load((platform.inventory / "group_vars" / "all" / "app.yml").read_text())
        user, password = app["app_admin_user"], platform.vault()["vault_django_admin_password"]
        customer = f"Browser test {time.strftime('%Y%m%d-%H%M%S')}"

        # Log in.
        browser.get(platform.site + "/admin/")
        browser.wait_for("#id_username").send_keys(user)
        browser.wait_for("#id_password").send_keys(password)
        browser.shot("02-admin-login")
        browser.click_and_load("#login-form [type=submit]")
        browser.wait_for("#user-tools")
        assert browser.driver.current_url.rstrip("/").endswith("/admin"), browser.driver.current_url
        browser.shot("03-admin-index")
        assert admin_problems(browser) == [], "after the login"

        # Create an order: the required fields are the pizzeria and the customer's name.
        browser.get(platform.site + "/admin/shop/order/add/")
        pizzeria = browser.wait_for("#id_pizzeria")
        options = [
            o for o in pizzeria.find_elements("css selector", "option") if o.get_attribute("value")
        ]
        assert options, "no pizzeria to choose: the starting data was not imported"
        options[0].click()
        browser.wait_for("#id_customer_name").send_keys(customer)
        browser.shot("04-order-form")
        browser.click_and_load("input[name=_save]")
        # The save redirects to the order list: an error there shows in the console.
        assert admin_problems(browser) == [], "after saving the order, on the order list"

        # Listed.
        success = browser.wait_for(".messagelist .success").text
        assert customer in browser.wait_for("#result_list").text, (
            f"{customer!r} is not in the order list after saving ({success!r})"
        )
        assert "/admin/shop/order/" in browser.driver.current_url, browser.driver.current_url
        browser.shot("05-order-listed")

        # Log out (a POST form in Django 5), then /admin/ asks for the login again.
        browser.click_and_load("#logout-form [type=submit]")
        browser.shot("06-logged-out")
        browser.get(platform.site + "/admin/")
        browser.wait_for("#id_username")
        assert "/admin/login/" in browser.driver.current_url, browser.driver.current_url
        assert admin_problems(browser) == [], "after logging out"
