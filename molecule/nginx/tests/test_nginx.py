"""Behaviour of role `nginx` that users and operators rely on.

Every check goes through a real client on the control node (curl, openssl
s_client) to the web hosts' addresses, with names resolved by --resolve, as a
browser would after DNS. bookworm serves a certificate issued by the
scenario's CA (local_ca), trixie a "provided" one signed by the same CA.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import container_ip, ephemeral_dir
from cryptography import x509

WEB = ["ocpizza-mol-nginx-bookworm", "ocpizza-mol-nginx-trixie"]
APPS = ["ocpizza-mol-nginx-app1", "ocpizza-mol-nginx-app2"]
LETSENCRYPT = "ocpizza-mol-nginx-letsencrypt"
SITE = "www.ocpizza.com"
APEX = "ocpizza.com"
STATIC = "/var/www/ocpizza/static"
HSTS = "max-age=63072000"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "content-security-policy": CSP,
}


@dataclass
class Response:
    rc: int
    stderr: str
    status: int = 0
    protocol: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def one(self, name: str) -> str:
        values = self.all(name)
        assert len(values) == 1, f"{name}: expected once, got {values}"
        return values[0]

    def json(self) -> dict:
        return json.loads(self.body)


def ca() -> str:
    return str(ephemeral_dir() / "ca.crt")


def curl(
    name: str, url: str, *extra: str, cacert: bool = True, data: bytes | None = None
) -> Response:
    """Request url from the control node, its host name resolved to web host `name`."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    cmd = [
        "curl",
        "-sS",
        "-i",
        "--noproxy",
        "*",
        "--max-time",
        "15",
        "--resolve",
        f"{parts.hostname}:{port}:{container_ip(name)}",
    ]
    if cacert:
        cmd += ["--cacert", ca()]
    if data is not None:
        cmd += ["--data-binary", "@-", "-H", "Content-Type: application/octet-stream"]
    res = subprocess.run(
        [*cmd, *extra, url], input=data, capture_output=True, timeout=60, check=False
    )
    out = Response(rc=res.returncode, stderr=res.stderr.decode(errors="replace"))
    if res.returncode == 0:
        head, _, out.body = res.stdout.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        out.protocol, out.status = status_line.split()[0], int(status_line.split()[1])
        out.headers = [
            (k.strip().lower(), v.strip())
            for k, v in (line.split(":", 1) for line in lines if ":" in line)
        ]
    return out


def s_client(
    name: str, *args: str, servername: str | None = SITE
) -> subprocess.CompletedProcess[str]:
    """openssl s_client to the web host, ignoring the control node's OpenSSL settings."""
    cmd = ["openssl", "s_client", "-connect", f"{container_ip(name)}:443", "-CAfile", ca(), *args]
    if servername:
        cmd += ["-servername", servername]
    env = {**os.environ, "OPENSSL_CONF": "/dev/null"}
    return subprocess.run(
        cmd, input="", capture_output=True, text=True, timeout=30, env=env, check=False
    )


def served_certificate(name: str, verify: bool = True) -> x509.Certificate:
    res = s_client(name, "-tls1_3")
    assert "New, TLSv1.3" in res.stdout, res.stderr
    if verify:
        assert "Verification: OK" in res.stdout, res.stdout + res.stderr
    pem = res.stdout[
        res.stdout.index("-----BEGIN CERTIFICATE-----") : res.stdout.index(
            "-----END CERTIFICATE-----"
        )
        + 25
    ]
    return x509.load_pem_x509_certificate(pem.encode())


def dns_names(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(ext.value.get_values_for_type(x509.DNSName))


def assert_security_headers(res: Response, https: bool = True) -> None:
    for header, value in SECURITY_HEADERS.items():
        assert res.one(header) == value
    if https:
        assert res.one("strict-transport-security") == HSTS
    assert res.one("server") == "nginx"  # server_tokens off: no version


# --- TLS ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", WEB)
@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_1_0_and_1_1_are_refused_by_the_server(name, version):
    # SECLEVEL=0 lets this OpenSSL 3 client offer the old versions: the
    # refusal (alert 70, protocol_version) comes from the server.
    res = s_client(name, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert res.returncode != 0
    assert "alert protocol version" in res.stderr, res.stderr


@pytest.mark.parametrize("name", WEB)
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tls_1_2_and_1_3_are_accepted_with_a_valid_certificate(name, version):
    res = s_client(name, f"-tls{version.replace('.', '_')}")
    assert res.returncode == 0, res.stderr
    assert f"New, TLSv{version}, Cipher is" in res.stdout
    assert "Verify return code: 0 (ok)" in res.stdout


@pytest.mark.parametrize("name", WEB)
@pytest.mark.parametrize(
    "cipher",
    [
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-ECDSA-CAMELLIA128-SHA256",
        "ECDHE-ECDSA-ARIA128-GCM-SHA256",
    ],
)
def test_tls_1_2_suites_outside_mozilla_intermediate_are_refused(name, cipher):
    # Suites the certificate (ECDSA) could use, but the profile excludes (CBC,
    # CAMELLIA, ARIA): the client offers only that one, the server refuses.
    res = s_client(name, "-tls1_2", "-cipher", f"{cipher}@SECLEVEL=0")
    assert res.returncode != 0
    assert "alert handshake failure" in res.stderr, res.stderr


@pytest.mark.parametrize("name", WEB)
@pytest.mark.parametrize(
    "cipher",
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ],
)
def test_tls_1_2_mozilla_intermediate_suites_are_accepted(name, cipher):
    res = s_client(name, "-tls1_2", "-cipher", cipher)
    assert f"New, TLSv1.2, Cipher is {cipher}" in res.stdout, res.stderr


@pytest.mark.parametrize("name", WEB)
def test_no_tls_session_tickets(name):
    res = s_client(name, "-tls1_2")
    assert "New, TLSv1.2" in res.stdout
    assert "TLS session ticket:" not in res.stdout


@pytest.mark.parametrize("name", WEB)
def test_certificate_validates_against_the_ca_only(name):
    good = curl(name, f"https://{SITE}/")
    assert good.rc == 0 and good.status == 200, good.stderr
    # Without the scenario's CA, the control node's trust store refuses it.
    untrusted = curl(name, f"https://{SITE}/", cacert=False)
    assert untrusted.rc == 60, untrusted.stderr
    cert = served_certificate(name)
    assert {SITE, APEX} <= dns_names(cert)
    assert cert.issuer.rfc4514_string() == "CN=OC Pizza molecule CA"


@pytest.mark.parametrize("name", WEB)
def test_tls_settings_a_client_cannot_see_follow_mozilla_intermediate(get_host, name):
    host = get_host(name)
    config = host.check_output("nginx -T 2>/dev/null")
    for line in (
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_prefer_server_ciphers off;",
        "ssl_session_tickets off;",
        "ssl_session_cache shared:MozSSL:10m;",
        "ssl_ecdh_curve X25519:prime256v1:secp384r1;",
        "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;",
    ):
        assert line in config
    # The DHE suites use the RFC 7919 group.
    assert "GROUP: ffdhe2048" in host.check_output(
        "openssl pkeyparam -in /etc/nginx/tls/ffdhe2048.pem -text -noout"
    )


@pytest.mark.parametrize(("name", "stapling"), [(WEB[0], "off"), (WEB[1], "on")])
def test_ocsp_stapling_only_for_a_certificate_with_a_responder(get_host, name, stapling):
    # bookworm's local CA certificate names no OCSP responder; trixie's
    # provided one does.
    config = get_host(name).check_output("nginx -T 2>/dev/null")
    assert f"ssl_stapling {stapling};" in config
    assert f"ssl_stapling {'on' if stapling == 'off' else 'off'};" not in config


@pytest.mark.parametrize("name", WEB)
def test_http2_is_served(name):
    res = curl(name, f"https://{SITE}/", "--http2")
    assert res.protocol == "HTTP/2" and res.status == 200


# --- Redirects and unknown hosts ---------------------------------------------------


@pytest.mark.parametrize("name", WEB)
@pytest.mark.parametrize(
    ("url", "location"),
    [
        (f"http://{SITE}/menu?size=large", f"https://{SITE}/menu?size=large"),
        (f"http://{APEX}/menu?size=large", f"https://{APEX}/menu?size=large"),
        (f"https://{APEX}/menu?size=large", f"https://{SITE}/menu?size=large"),
    ],
)
def test_http_to_https_and_apex_to_www(name, url, location):
    res = curl(name, url)
    assert res.status == 301, res.stderr
    assert res.one("location") == location
    assert_security_headers(res, https=url.startswith("https"))


@pytest.mark.parametrize("name", WEB)
def test_unknown_host_gets_no_answer(name):
    # 444: nginx closes the connection; curl reports an empty reply (52).
    plain = curl(name, "http://evil.example/")
    assert plain.rc == 52, plain.stderr
    spoofed = curl(name, f"https://{SITE}/", "--http1.1", "-H", "Host: evil.example")
    assert spoofed.rc == 52, spoofed.stderr
    # An unknown TLS server name is refused at the handshake (35).
    sni = curl(name, "https://evil.example/")
    assert sni.rc == 35, sni.stderr
    res = s_client(name, "-tls1_3", servername=None)
    assert res.returncode != 0 and "New, TLSv1.3" not in res.stdout


@pytest.mark.parametrize("name", WEB)
def test_acme_challenges_are_served_over_http(name):
    for host in (SITE, APEX):
        res = curl(name, f"http://{host}/.well-known/acme-challenge/molecule-token")
        assert res.status == 200
        assert res.body == b"molecule-token.key-authorization\n"


# --- Headers -----------------------------------------------------------------------


@pytest.mark.parametrize("name", WEB)
def test_security_headers_on_proxied_pages_once_with_nginx_values(name):
    # The stand-in app sends its own X-Frame-Options and HSTS (as Django's
    # SecurityMiddleware does): only nginx's values reach the client.
    res = curl(name, f"https://{SITE}/")
    assert res.status == 200 and res.json()["backend"] in APPS
    assert_security_headers(res)


@pytest.mark.parametrize("name", WEB)
def test_security_headers_on_error_pages(name):
    res = curl(name, f"https://{SITE}/static/missing.css")
    assert res.status == 404
    assert_security_headers(res)
    assert not res.all("cache-control")


# --- Reverse proxy -----------------------------------------------------------------


@pytest.mark.parametrize("name", WEB)
def test_proxy_sends_forwarded_headers(name):
    res = curl(
        name,
        f"https://{SITE}/orders?id=7",
        "--http1.1",
        "-H",
        "X-Forwarded-For: 203.0.113.66",
        "-H",
        "Connection: close",
    )
    seen = res.json()
    assert seen["path"] == "/orders?id=7"
    headers = seen["headers"]
    assert headers["host"] == SITE
    assert headers["x-forwarded-proto"] == "https"  # Django's SECURE_PROXY_SSL_HEADER
    assert headers["x-forwarded-host"] == SITE
    # nginx is the edge: the client's own claim is replaced by its address,
    # which is the podman gateway the control node talks through.
    gateway = container_ip(name).rsplit(".", 1)[0] + ".1"
    assert headers["x-forwarded-for"] == gateway
    # HTTP/1.1 keepalive to the app servers: the client's "close" is not passed.
    assert seen["version"] == "HTTP/1.1"
    assert "connection" not in headers


@pytest.mark.parametrize("name", WEB)
def test_the_apps_metrics_are_never_served_to_visitors(name):
    # The stand-in app answers every path (as gunicorn answers the metrics path
    # to the monitoring hosts): nginx answers 404 itself, however it is spelled.
    assert curl(name, f"https://{SITE}/metricsx").json()["backend"] in APPS
    for path in ("/metrics", "/metrics/", "/metrics/x", "/metrics?x=1", "/%6Detrics", "//metrics"):
        res = curl(name, f"https://{SITE}{path}", "--path-as-is")
        assert res.status == 404, path
        assert b"backend" not in res.body, path


@pytest.mark.parametrize("name", WEB)
def test_every_app_server_gets_requests_over_kept_alive_connections(name):
    backends: set[str] = set()
    reused = False
    for _ in range(30):
        seen = curl(name, f"https://{SITE}/rr").json()
        backends.add(seen["backend"])
        reused = reused or seen["requests_on_connection"] > 1
        if backends == set(APPS) and reused:
            break
    assert backends == set(APPS)
    assert reused, "no upstream connection was reused"


@pytest.mark.parametrize("name", WEB)
def test_request_body_size_limit(name):
    small = curl(name, f"https://{SITE}/upload", data=b"x" * 100_000)
    assert small.status == 200 and small.json()["body_length"] == 100_000
    big = curl(name, f"https://{SITE}/upload", data=b"x" * 2_000_000)
    assert big.status == 413


@pytest.mark.parametrize("name", WEB)
def test_admin_allow_list(get_host, name):
    from_control_node = curl(name, f"https://{SITE}/admin/")
    if name.endswith("bookworm"):
        # Only loopback is allowed there.
        assert from_control_node.status == 403
        assert_security_headers(from_control_node)
        local = get_host(name).check_output(
            "curl -sS -k --noproxy '*' --resolve www.ocpizza.com:443:127.0.0.1 "
            "https://www.ocpizza.com/admin/"
        )
        assert json.loads(local)["path"] == "/admin/"
    else:
        assert from_control_node.status == 200
        assert from_control_node.json()["path"] == "/admin/"


def test_admin_login_is_rate_limited_while_the_site_answers():
    # trixie's admin is open to the control node; the login form takes
    # nginx_admin_login_burst (5) requests at once beyond its rate (10r/m).
    name, burst, url = WEB[1], 5, f"https://{SITE}/admin/login/"
    argv = ["curl", "-sS", "--noproxy", "*", "--max-time", "15", "--cacert", ca()]
    argv += ["--resolve", f"{SITE}:443:{container_ip(name)}", "-w", "%{http_code}\n"]
    argv += ["--data", "username=admin&password=guess"]
    for _ in range(burst + 6):
        argv += ["-o", "/dev/null", url]
    codes = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.split()
    assert codes[: burst + 1] == ["200"] * (burst + 1), codes
    assert codes[-4:] == ["429"] * 4, codes
    refused = curl(name, url)  # a GET is limited too
    assert refused.status == 429
    assert_security_headers(refused)
    assert curl(name, f"https://{SITE}/").status == 200  # the site still answers
    assert curl(name, f"https://{SITE}/admin/").status == 200  # and the rest of the admin


def detail_header(res: str | bytes) -> str:
    """The X-OCPizza-Health-Detail the stand-in app received (nginx's verdict)."""
    return json.loads(res)["headers"]["x-ocpizza-health-detail"]


@pytest.mark.parametrize("name", WEB)
def test_health_detail_only_for_this_host_and_the_web_servers(get_host, name):
    url = f"https://{SITE}/healthz"
    # A visitor gets "0", even when it claims otherwise.
    public = curl(name, url, "-H", "X-OCPizza-Health-Detail: 1")
    assert public.status == 200 and detail_header(public.body) == "0"
    # The web host itself (loopback), and the other web server: "1".
    local = "curl -sS -k --noproxy '*' --resolve www.ocpizza.com:443:{} " + url
    assert detail_header(get_host(name).check_output(local.format("127.0.0.1"))) == "1"
    other = next(w for w in WEB if w != name)
    assert detail_header(get_host(other).check_output(local.format(container_ip(name)))) == "1"


# --- Static files ------------------------------------------------------------------


@pytest.mark.parametrize("name", WEB)
def test_hashed_static_files_are_cached_for_a_year_and_compressed(get_host, name):
    path = "css/site.0123456789ab.css"
    plain = curl(name, f"https://{SITE}/static/{path}")
    assert plain.status == 200
    assert plain.one("content-type") == "text/css"
    assert plain.one("cache-control") == "public, max-age=31536000, immutable"
    assert_security_headers(plain)
    assert plain.body == get_host(name).file(f"{STATIC}/{path}").content

    gz = curl(name, f"https://{SITE}/static/{path}", "-H", "Accept-Encoding: gzip")
    assert gz.one("content-encoding") == "gzip"
    assert "Accept-Encoding" in gz.one("vary")
    assert gzip.decompress(gz.body) == plain.body


@pytest.mark.parametrize("name", WEB)
def test_precompressed_static_files_are_served_as_they_are(name):
    url = f"https://{SITE}/static/js/app.abcdef012345.js"
    gz = curl(name, url, "-H", "Accept-Encoding: gzip")
    assert gz.one("content-encoding") == "gzip"
    assert gzip.decompress(gz.body) == b"precompressed by the app deploy\n"
    plain = curl(name, url)
    assert not plain.all("content-encoding")
    assert plain.body.startswith(b"/* js/app.abcdef012345.js")


@pytest.mark.parametrize("name", WEB)
def test_unhashed_static_files_are_cached_briefly(name):
    res = curl(name, f"https://{SITE}/static/css/site.css")
    assert res.status == 200
    assert res.one("cache-control") == "public, max-age=3600"


@pytest.mark.parametrize("name", WEB)
def test_static_root_belongs_to_root_and_is_readable(get_host, name):
    root = get_host(name).file(STATIC)
    assert root.user == "root" and root.mode == 0o755


# --- Configuration handling ------------------------------------------------------------


@pytest.mark.parametrize("name", WEB)
def test_live_configuration_is_clean(get_host, name):
    host = get_host(name)
    res = host.run("nginx -t")
    assert res.rc == 0
    assert "[warn]" not in res.stderr and "[emerg]" not in res.stderr, res.stderr
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    nginx_conf = host.file("/etc/nginx/nginx.conf").content_string
    assert "sites-enabled" not in nginx_conf
    assert host.service("nginx").is_enabled


@pytest.mark.parametrize("name", WEB)
def test_invalid_extra_config_is_refused_while_the_site_keeps_answering(get_host, name):
    record = ephemeral_dir() / f"refusal-{name}.json"
    if not record.exists():
        pytest.skip("side_effect.yml has not run")
    outcome = json.loads(record.read_text())
    # The role failed with nginx's own words...
    assert 'unknown directive "this_is_not_a_directive"' in outcome["message"]
    assert "NOT installed" in outcome["message"]
    # ...the live file was not touched, and the site answered right after.
    assert outcome["live_unchanged"] is True
    assert outcome["status_after"] == "200"
    assert get_host(name).run("grep -r this_is_not_a_directive /etc/nginx").rc == 1
    assert curl(name, f"https://{SITE}/").status == 200


def _renewal(name: str) -> dict:
    record = ephemeral_dir() / f"renewal-{name}.json"
    if not record.exists():
        pytest.skip("side_effect.yml has not run")
    return json.loads(record.read_text())


def test_local_ca_certificate_due_for_renewal_and_renamed_is_issued_again():
    outcome = _renewal(WEB[0])
    # The role saw both reasons: a certificate expiring in 5 days, and a new name...
    reasons = outcome["reasons"]
    assert any(r.startswith("expires on") and "in 4 days" in r for r in reasons), reasons
    assert any(r.startswith("does not cover api.ocpizza.com") for r in reasons), reasons
    # ...and issued a certificate valid for a year, with every name,
    assert outcome["serial"] != outcome["short_serial"]
    assert outcome["valid_in_300_days"] is True
    assert set(outcome["names"]) == {f"DNS:{n}" for n in (SITE, APEX, "api.ocpizza.com")}
    # which nginx serves after its reload.
    cert = served_certificate(WEB[0])
    assert cert.serial_number == outcome["serial"]
    assert "api.ocpizza.com" in dns_names(cert)


def test_rotated_provided_certificate_is_served():
    outcome = _renewal(WEB[1])
    rotated = x509.load_pem_x509_certificate(
        (ephemeral_dir() / "provided-rotated.crt").read_bytes()
    )
    assert outcome["serial"] == rotated.serial_number
    cert = served_certificate(WEB[1])
    assert cert.serial_number == rotated.serial_number
    assert "api.ocpizza.com" in dns_names(cert)


def test_letsencrypt_mode_bootstraps_and_asks_only_the_configured_acme_server(get_host):
    outcome = _renewal(LETSENCRYPT)
    assert outcome["mode"] == "letsencrypt"
    # The role stopped at the ACME request with certbot's own error, which
    # names the configured ACME server (a closed local port), not Let's Encrypt.
    assert "certbot could not obtain the certificate" in outcome["error"], outcome["error"]
    assert "127.0.0.1" in outcome["error"] and "Connection refused" in outcome["error"]
    host = get_host(LETSENCRYPT)
    log = host.check_output("cat /var/log/letsencrypt/letsencrypt.log")
    requests = [
        line
        for line in log.splitlines()
        if "Sending GET request to" in line or "Sending POST request to" in line
    ]
    assert requests and all("https://127.0.0.1:14000/" in line for line in requests), requests
    assert "api.letsencrypt.org" not in log
    # Meanwhile nginx serves a self-signed bootstrap certificate for every name,
    cert = served_certificate(LETSENCRYPT, verify=False)
    assert cert.issuer == cert.subject
    assert {SITE, APEX, "api.ocpizza.com"} <= dns_names(cert)
    assert (
        host.file("/etc/nginx/tls/www.ocpizza.com.crt").linked_to
        == "/etc/nginx/tls/www.ocpizza.com.bootstrap.crt"
    )
    # and the challenge directory certbot's webroot mode writes to, over HTTP.
    host.check_output("echo le-token > /var/www/letsencrypt/.well-known/acme-challenge/le-test")
    res = curl(LETSENCRYPT, f"http://{SITE}/.well-known/acme-challenge/le-test")
    assert res.status == 200 and res.body == b"le-token\n"


def test_letsencrypt_renewals_reload_nginx_without_stopping_it(get_host):
    if not (ephemeral_dir() / f"renewal-{LETSENCRYPT}.json").exists():
        pytest.skip("side_effect.yml has not run")
    host = get_host(LETSENCRYPT)
    timer = host.service("certbot.timer")
    assert timer.is_enabled and timer.is_running
    hook = host.file("/etc/letsencrypt/renewal-hooks/deploy/50-ocpizza-reload-nginx")
    assert hook.mode == 0o755 and "nginx -t" in hook.content_string
    # What certbot runs after a renewal: nginx is reloaded, never restarted.
    master = host.check_output("systemctl show -p MainPID --value nginx")
    workers = set(host.check_output(f"pgrep -P {master}").split())
    host.check_output(hook.path)
    for _ in range(20):
        new_workers = set(host.check_output(f"pgrep -P {master}").split()) - workers
        if new_workers:
            break
        time.sleep(0.25)
    assert new_workers, "the hook did not reload nginx (same workers)"
    assert host.check_output("systemctl show -p MainPID --value nginx") == master


@pytest.mark.parametrize("name", WEB)
def test_logs_rotate_and_nginx_writes_to_the_new_file(get_host, name):
    host = get_host(name)
    assert "rotate 14" in host.file("/etc/logrotate.d/nginx").content_string
    curl(name, f"https://{SITE}/before-rotation")
    host.check_output("logrotate -f /etc/logrotate.d/nginx")
    assert host.file("/var/log/nginx/access.log.1").exists
    marker = f"/after-rotation-{time.time_ns()}"
    for _ in range(20):
        curl(name, f"https://{SITE}{marker}")
        if marker in host.file("/var/log/nginx/access.log").content_string:
            break
        time.sleep(0.5)
    assert marker in host.file("/var/log/nginx/access.log").content_string


# --- Entry points: check.yml and control.yml -------------------------------------------
# Run as the runbook playbooks run them (include_role tasks_from), through the
# scenario's service.yml, with Ansible's JSON report. The visitor check goes
# to https://www.ocpizza.com/django (molecule.yml), where the stand-in app
# answers as Django does, resolved to the web host named by `visitor`.


@dataclass
class EntryRun:
    """The outcome of one run of an entry point of the role."""

    rc: int
    report: dict

    def results(self, host: str) -> list[dict]:
        """Every task result of a host, with its task's name."""
        out = []
        for play in self.report["plays"]:
            for task in play["tasks"]:
                if host in task["hosts"]:
                    out.append({**task["hosts"][host], "task": task["task"]["name"]})
        return out

    def facts(self, host: str) -> dict:
        """ocpizza_checks and ocpizza_service_states as the entry point left them."""
        shown = [r for r in self.results(host) if r["task"] == "Show what the entry point recorded"]
        assert shown, f"{host} did not reach the end of the play: {self.results(host)[-1:]}"
        return shown[0]["msg"]

    def error(self, host: str) -> str:
        return next(r["msg"] for r in self.results(host) if r.get("failed"))

    def changed(self, host: str) -> int:
        return self.report["stats"][host]["changed"]


def run_entry(entry: str, *extra: str, hosts: list[str] = WEB, visitor: str = WEB[1]) -> EntryRun:
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        os.environ["MOLECULE_INVENTORY_FILE"],
        str(Path(__file__).resolve().parents[1] / "service.yml"),
        "--limit",
        ",".join(hosts),
        "-e",
        json.dumps(
            {"nginx_test_entry": entry, "verify_resolve": f"{SITE}:443:{container_ip(visitor)}"}
        ),
        *extra,
    ]
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"}
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, env=env)
    # Ansible's JSON report, without the lines profile_tasks prints before and after it.
    out = "\n" + res.stdout
    document = out[out.index("\n{\n") : out.rindex("\n}") + 2]
    return EntryRun(res.returncode, json.loads(document))


def nginx_action(action: str, host: str) -> EntryRun:
    return run_entry("control", "-e", json.dumps({"nginx_service_action": action}), hosts=[host])


def master_pid(host) -> str:
    return host.check_output("systemctl show -p MainPID --value nginx")


def test_check_reports_the_site_healthy_on_each_host_and_for_visitors():
    run = run_entry("check")
    assert run.rc == 0, run.report
    visitor_checks = {
        f"GET https://{SITE}/django/ answers 200",
        "GET /admin/ redirects to the admin login",
        "GET /healthz: database reachable",
    }
    seen_visitor = 0
    for name in WEB:
        checks = {c["name"]: c for c in run.facts(name)["checks"]}
        assert all(c["ok"] is True for c in checks.values()), checks
        assert checks[f"nginx active on {name}"]["detail"] == "unit nginx: active"
        served = checks[f"site served by nginx on {name}"]["detail"]
        assert served.startswith(f"GET https://{SITE}/ via 127.0.0.1: 200"), served
        if visitor_checks <= checks.keys():
            seen_visitor += 1
            assert (
                "/django/admin/login/"
                in checks["GET /admin/ redirects to the admin login"]["detail"]
            )
            # A visitor gets the bare status: no release, no database state.
            health = checks["GET /healthz: database reachable"]["detail"]
            assert '"status": "ok"' in health and "release" not in health, health
        assert len(checks) in (2, 5)
        assert run.changed(name) == 0
    assert seen_visitor == 1  # once per play, from the control node


def test_stopped_nginx_fails_the_check_with_a_clear_message_and_start_heals(get_host):
    name = WEB[1]
    try:
        run = nginx_action("stop", name)
        assert run.rc == 0, run.report
        assert run.facts(name)["service_states"] == [{"component": "nginx", "state": "inactive"}]
        assert any(r.get("msg") == f"{name}: nginx is inactive" for r in run.results(name))
        assert curl(name, f"https://{SITE}/").rc == 7  # connection refused
        # Fail fast (the default): the host fails, naming what is unhealthy.
        run = run_entry("check", hosts=[name], visitor=name)
        assert run.rc != 0
        message = run.error(name)
        assert f"nginx is unhealthy on {name}" in message
        assert f"nginx active on {name} (unit nginx: inactive)" in message
        assert f"site served by nginx on {name}" in message
        assert "Failed to connect" in message
        # verify.yml's mode: every check recorded, the play goes on.
        run = run_entry(
            "check", "-e", '{"ocpizza_checks_fail_fast": false}', hosts=[name], visitor=name
        )
        assert run.rc == 0, run.report
        checks = run.facts(name)["checks"]
        assert len(checks) == 5 and not any(c["ok"] for c in checks), checks
        # start brings it back, and the check passes again.
        run = nginx_action("start", name)
        assert run.rc == 0, run.report
        assert run.facts(name)["service_states"] == [{"component": "nginx", "state": "active"}]
        run = run_entry("check", hosts=[name], visitor=name)
        assert run.rc == 0, run.report
        assert all(c["ok"] for c in run.facts(name)["checks"])
    finally:
        get_host(name).run("systemctl start nginx")


def test_control_refuses_an_unknown_action_before_any_change(get_host):
    host = get_host(WEB[0])
    before = master_pid(host)
    run = nginx_action("bounce", WEB[0])
    assert run.rc != 0
    message = run.error(WEB[0])
    assert "must be one of start, stop, restart, reload, status" in message
    assert 'got "bounce"' in message
    assert run.changed(WEB[0]) == 0
    assert master_pid(host) == before


def test_control_reloads_and_restarts_only_a_configuration_nginx_accepts(get_host):
    name = WEB[0]
    host = get_host(name)
    before = master_pid(host)
    run = nginx_action("status", name)
    assert run.rc == 0 and run.changed(name) == 0, run.report
    assert run.facts(name)["service_states"] == [{"component": "nginx", "state": "active"}]
    broken = "/etc/nginx/ocpizza.d/zz-broken.conf"
    try:
        host.check_output(f"echo 'this_is_not_a_directive on;' > {broken}")
        for action in ("reload", "restart"):
            run = nginx_action(action, name)
            assert run.rc != 0
            message = run.error(name)
            assert f"{action} refused on {name}" in message
            assert 'unknown directive "this_is_not_a_directive"' in message
            assert master_pid(host) == before
            assert curl(name, f"https://{SITE}/").status == 200
    finally:
        host.check_output(f"rm -f {broken}")
    # With the configuration accepted, reload keeps the master and replaces the workers.
    workers = set(host.check_output(f"pgrep -P {before}").split())
    run = nginx_action("reload", name)
    assert run.rc == 0, run.report
    assert master_pid(host) == before
    for _ in range(20):
        if not workers & set(host.check_output(f"pgrep -P {before}").split()):
            break
        time.sleep(0.25)
    assert not workers & set(host.check_output(f"pgrep -P {before}").split())
    assert curl(name, f"https://{SITE}/").status == 200


# --- Failover (last: it marks an app server as failed for a while) --------------------


@pytest.mark.parametrize(
    ("break_it", "repair"),
    [
        ("systemctl stop echo-backend", "systemctl start echo-backend"),
        ("touch /run/echo-backend.fail", "rm -f /run/echo-backend.fail"),
    ],
    ids=["app-server-down", "app-server-answers-502"],
)
def test_requests_go_to_the_other_app_server_when_one_fails(get_host, break_it, repair):
    broken = get_host(APPS[1])
    broken.check_output(break_it)
    try:
        for _ in range(10):
            res = curl(WEB[0], f"https://{SITE}/failover")
            assert res.status == 200
            assert res.json()["backend"] == APPS[0]
    finally:
        broken.check_output(repair)


# --- Behind a load balancer (PROXY protocol) ----------------------------------------


def _proxy_protocol() -> dict:
    record = ephemeral_dir() / "proxy-protocol.json"
    if not record.exists():
        pytest.skip("side_effect.yml has not run")
    return json.loads(record.read_text())


def test_behind_a_load_balancer_the_client_address_is_logged_and_forwarded():
    outcome = _proxy_protocol()
    proxied, plain, direct = outcome["probes"]
    client = outcome["client"]
    # HTTPS through the PROXY protocol: the app gets the client's address in
    # X-Forwarded-For, not the load balancer's.
    assert proxied["status"] == 200, proxied
    assert json.loads(proxied["body"])["headers"]["x-forwarded-for"] == client
    # Plain HTTP takes it too (and redirects to HTTPS).
    assert plain["status"] == 301, plain
    # A connection without the PROXY line is not served.
    assert direct["status"] is None, direct
    # The access log shows the client's address for both requests.
    logged = {line.split('"GET ')[1].split()[0]: line.split()[0] for line in outcome["access_log"]}
    assert logged.get("/proxied") == client, outcome["access_log"]
    assert logged.get("/plain") == client, outcome["access_log"]


def test_behind_a_load_balancer_the_role_check_still_asks_its_own_nginx():
    checks = _proxy_protocol()["local_check"]
    assert checks, "the check recorded no local request"
    assert all(check["ok"] for check in checks), checks


def test_a_load_balancer_source_that_is_not_an_address_is_refused_by_name():
    message = _proxy_protocol()["bad_source_message"]
    assert "nginx_load_balancer_sources" in message
    assert "lb.ocpizza.example" in message
