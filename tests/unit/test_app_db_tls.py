"""Issue 15, finding 8, the app's side: settings/production.py connects to MySQL over TLS
and verifies the server.

Role app's template (roles/app/templates/production.py.j2) is rendered with Ansible's
filters, then executed as Django imports it (on top of the example app's settings, whose
DATABASES the environment's DATABASE_URL fills). The connection options it leaves are given
to PyMySQL, the app's client library, which must then require a certificate signed by the
CA and check the server's name or address. The molecule scenario mysql proves the same
options against a real server (and that the server refuses plaintext).
"""

from __future__ import annotations

import ssl
import sys
import types
from typing import Any

import pymysql
import pytest
from role_templates import role_template_env

# A CA bundle present on any Debian control node: PyMySQL loads it as the CA file.
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def render(**variables: Any) -> str:
    """settings/production.py as the role writes it for these variables."""
    env = role_template_env("app")
    values: dict[str, Any] = {
        "ansible_managed": "Ansible managed",
        "app_settings_module": "settings.production",
        "app__conf_dir": "/var/lib/ocpizza/OC_PIZZA",
        "app_env_file": "/etc/ocpizza/app.env",
        "app_settings_extra": "",
        "app_db_host": "10.0.0.11",
        "app_db_tls_ca_cert": "",
        "app__db_tls_ca_file": CA_BUNDLE,
    }
    values.update(variables)
    return env.get_template("production.py.j2").render(**values)


def settings(code: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Execute the settings file over the example app's (stubbed: DATABASES from DATABASE_URL)."""
    base = types.ModuleType("ocpizza.settings.production")
    base.DATABASES = {  # type: ignore[attr-defined]
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "HOST": "10.0.0.11",
            "OPTIONS": {"charset": "utf8mb4"},
        }
    }
    base.__all__ = ["DATABASES"]  # type: ignore[attr-defined]
    for name in ("ocpizza", "ocpizza.settings"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "ocpizza.settings.production", base)
    namespace: dict[str, Any] = {}
    exec(compile(code, "production.py", "exec"), namespace)  # the rendered settings
    return namespace


def test_with_a_ca_the_app_connects_with_tls_and_verifies_the_server(monkeypatch):
    code = render(app_db_tls_ca_cert="/srv/inventory/mysql-ca.crt")
    compile(code, "production.py", "exec")
    options = settings(code, monkeypatch)["DATABASES"]["default"]["OPTIONS"]
    assert options["ssl"] == {"ca": CA_BUNDLE, "check_hostname": True}
    assert options["charset"] == "utf8mb4"  # the app's own options stay
    # What PyMySQL makes of them (Django passes OPTIONS to its connect()).
    conn = pymysql.connections.Connection(
        host="10.0.0.11", user="oc_pizza", defer_connect=True, **options
    )
    assert conn.ssl is True
    assert conn.ctx.verify_mode == ssl.CERT_REQUIRED
    assert conn.ctx.check_hostname is True
    assert conn.ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_without_a_ca_the_settings_add_no_tls(monkeypatch):
    code = render()
    options = settings(code, monkeypatch)["DATABASES"]["default"]["OPTIONS"]
    assert "ssl" not in options
