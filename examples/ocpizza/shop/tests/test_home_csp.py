"""The home page keeps to the site's Content-Security-Policy.

nginx sends ``style-src 'self'; script-src 'self'`` (roles/nginx,
``nginx_content_security_policy``): a browser drops any inline ``<style>``,
``style=""`` attribute, inline ``<script>`` or ``on*=""`` handler. The page's
look must therefore come from a stylesheet of the app, collected with the
other static files (with a content hash in production) and served by nginx.
"""

from __future__ import annotations

import tempfile
from html.parser import HTMLParser
from pathlib import Path

from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import TestCase, override_settings

from shop.tests.factories import make_margherita, make_pizzeria

STYLESHEET = "shop/home.css"
MANIFEST_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
    },
}


class PageParts(HTMLParser):
    """What of a page a Content-Security-Policy without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.stylesheets: list[str] = []
        self.icons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "style":
            self.inline.append("<style> element")
        if tag == "script" and not values.get("src"):
            self.inline.append("<script> without src")
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f'{name}="" attribute on <{tag}>')
        if tag == "link" and (values.get("rel") or "").lower() == "stylesheet":
            self.stylesheets.append(values.get("href") or "")
        if tag == "link" and (values.get("rel") or "").lower() == "icon":
            self.icons.append(values.get("href") or "")
        if tag == "a" and (values.get("href") or "").lower().startswith("javascript:"):
            self.inline.append("javascript: link")


def parts_of(html: str) -> PageParts:
    parser = PageParts()
    parser.feed(html)
    parser.close()
    return parser


class HomePageCspTests(TestCase):
    def setUp(self) -> None:
        make_pizzeria("OC Pizza Bastille")
        make_margherita()

    def test_home_has_no_inline_style_or_script(self) -> None:
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        parts = parts_of(response.content.decode())
        self.assertEqual(parts.inline, [], "the CSP (style-src/script-src 'self') blocks these")

    def test_home_links_its_stylesheet(self) -> None:
        parts = parts_of(self.client.get("/").content.decode())
        self.assertEqual(parts.stylesheets, ["/static/" + STYLESHEET])
        found = finders.find(STYLESHEET)
        self.assertIsNotNone(found, f"{STYLESHEET} is not in any app's static directory")
        # The rules the page's look depends on (the browser test checks h1's colour).
        css = Path(str(found)).read_text()
        self.assertRegex(css, r"h1\s*\{[^}]*color:\s*#b22222")

    def test_home_names_its_icon(self) -> None:
        # Without one, browsers probe /favicon.ico, which the site does not serve:
        # a 404 in the console of every visitor.
        parts = parts_of(self.client.get("/").content.decode())
        self.assertEqual(parts.icons, ["/static/shop/favicon.svg"])
        self.assertIsNotNone(finders.find("shop/favicon.svg"))

    def test_stylesheet_is_collected_with_a_hashed_name(self) -> None:
        with tempfile.TemporaryDirectory() as static_root:
            with override_settings(STORAGES=MANIFEST_STORAGES, STATIC_ROOT=static_root):
                call_command("collectstatic", "--noinput", verbosity=0, ignore_patterns=["admin"])
                parts = parts_of(self.client.get("/").content.decode())
            self.assertEqual(len(parts.stylesheets), 1, parts.stylesheets)
            href = parts.stylesheets[0]
            self.assertRegex(href, r"^/static/shop/home\.[0-9a-f]{12}\.css$")
            served = Path(static_root) / href.removeprefix("/static/")
            self.assertTrue(served.is_file(), f"{served} was not collected")
            self.assertIn("#b22222", served.read_text())

    def test_detector_sees_what_the_csp_blocks(self) -> None:
        page = (
            '<style>h1{}</style><p style="color:red" onclick="x()">'
            '<script>alert(1)</script><script src="/static/a.js"></script>'
        )
        self.assertEqual(
            parts_of(page).inline,
            [
                "<style> element",
                'style="" attribute on <p>',
                'onclick="" attribute on <p>',
                "<script> without src",
            ],
        )
