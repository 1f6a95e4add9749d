"""scripts/loadcheck.py against a local HTTPS server: counts, failures by kind, p99, the hard stop.

The server listens on 127.0.0.1 with a throwaway CA and a certificate for
www.loadcheck.test (made with the ``cryptography`` package), and answers by
path: 200, 302, 502, a 503 maintenance page, a reset connection, a slow
answer, a hung one. loadcheck runs as the operator runs it: a subprocess.
"""

from __future__ import annotations

import datetime
import json
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
LOADCHECK = ROOT / "scripts" / "loadcheck.py"
SITE = "www.loadcheck.test"
MAINTENANCE = (
    b"<!doctype html><html><head><title>Maintenance - OC Pizza</title></head>"
    b"<body>Back soon</body></html>"
)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for SITE: (ca.crt, server.crt, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("loadcheck test CA"))
        .issuer_name(_name("loadcheck test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(SITE))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SITE)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.crt", directory / "server.crt", directory / "server.key")
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class Handler(BaseHTTPRequestHandler):
    """Answers by path; see the module docstring."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes = b"ok", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        if path == "/":
            self._send(200)
        elif path == "/redirect":
            self._send(302, b"", {"Location": "/"})
        elif path == "/bad":
            self._send(502, b"<html><head><title>502 Bad Gateway</title></head></html>")
        elif path == "/maint":
            self._send(503, MAINTENANCE, {"Retry-After": "30"})
        elif path == "/reset":
            # SO_LINGER 0 then close: the kernel answers with a TCP RST, no HTTP answer.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif path == "/slow":
            time.sleep(0.3)
            self._send(200)
        elif path == "/timeout":
            time.sleep(2)
            self._send(200)
        elif path == "/hang":
            time.sleep(30)
        else:
            self._send(404, b"no")

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the /reset answer closed the socket under the handler


class Server(ThreadingHTTPServer):
    """Quiet: a reset connection is what the test wants, not an error to print."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """(port, ca.crt) of a loopback HTTPS server for SITE."""
    ca, crt, key = make_certs(tmp_path_factory.mktemp("loadcheck-tls"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    server = Server(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], ca
    finally:
        server.shutdown()
        server.server_close()


def loadcheck(
    port: int, ca: Path | None, *args: str, timeout: float = 30
) -> tuple[int, dict, float]:
    """Run loadcheck against the test server: (exit status, report, wall seconds)."""
    cmd = [
        sys.executable,
        str(LOADCHECK),
        f"https://{SITE}:{port}",
        "--resolve",
        f"{SITE}:{port}:127.0.0.1",
        *(["--cacert", str(ca)] if ca else []),
        *args,
    ]
    start = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.monotonic() - start
    assert res.stdout.strip(), res.stderr
    return res.returncode, json.loads(res.stdout), wall


def test_counts_every_request_and_reports_no_failure_when_all_answer(site):
    port, ca = site
    code, report, _ = loadcheck(
        port, ca, "--clients", "3", "--duration", "1.5", "--path", "/", "--path", "/redirect"
    )
    assert code == 0
    assert report["failed"] == 0 and report["failures"] == []
    assert report["requests"] > 10
    assert set(report["statuses"]) == {"200", "302"}
    assert sum(report["statuses"].values()) == report["requests"]
    assert 0 < report["p99_ms"] < 300
    assert report["stopped_by"] == "duration"


def test_paces_each_client_at_the_rate_given(site):
    port, ca = site
    code, report, _ = loadcheck(port, ca, "--clients", "2", "--duration", "2", "--rate", "5")
    assert code == 0 and report["failed"] == 0
    # 2 clients x 5 requests/s x 2 s = 20, give or take the first and the last.
    assert 16 <= report["requests"] <= 22, report["requests"]


@pytest.mark.parametrize("rate", ["-1", "1001"])
def test_refuses_a_rate_out_of_range(rate):
    res = subprocess.run(
        [sys.executable, str(LOADCHECK), "https://localhost", "--rate", rate],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 2 and "--rate must be between" in res.stderr


def test_sorts_failures_by_kind(site):
    port, ca = site
    code, report, _ = loadcheck(
        port,
        ca,
        "--clients",
        "4",
        "--duration",
        "3",
        "--timeout",
        "0.5",
        *("--path", "/", "--path", "/bad", "--path", "/reset", "--path", "/timeout"),
    )
    assert code == 1
    kinds = report["failure_kinds"]
    assert set(kinds) == {"status 502", "reset", "timeout"}, report
    assert report["failed"] == sum(kinds.values())
    assert report["failed"] == report["requests"] - report["statuses"]["200"]
    assert report["statuses"]["502"] == kinds["status 502"]
    by_path = {f["path"]: f for f in report["failures"]}
    assert by_path["/bad"]["kind"] == "status" and by_path["/bad"]["status"] == 502
    assert by_path["/reset"]["kind"] == "reset" and by_path["/reset"]["status"] is None
    assert by_path["/timeout"]["kind"] == "timeout"
    assert all(0 <= f["t"] <= 3.5 for f in report["failures"])
    assert report["first_failure_t"] <= report["last_failure_t"]


def test_reports_a_maintenance_page_with_its_retry_after_and_title(site):
    port, ca = site
    _, report, _ = loadcheck(port, ca, "--clients", "1", "--duration", "0.5", "--path", "/maint")
    assert report["failed"] == report["requests"] > 0
    first = report["failures"][0]
    assert (first["kind"], first["status"]) == ("status", 503)
    assert first["retry_after"] == "30"
    assert first["title"] == "Maintenance - OC Pizza"


def test_lists_failures_up_to_the_limit_and_counts_them_all(site):
    port, ca = site
    _, report, _ = loadcheck(
        port, ca, "--clients", "2", "--duration", "1", "--path", "/bad", "--max-failures", "3"
    )
    assert len(report["failures"]) == 3
    assert report["failed"] == report["requests"] == 3 + report["failures_dropped"]


def test_an_untrusted_certificate_is_a_tls_failure(site):
    port, _ = site
    code, report, _ = loadcheck(port, None, "--clients", "1", "--duration", "0.5")
    assert code == 1
    assert set(report["failure_kinds"]) == {"tls"}
    assert "CERTIFICATE_VERIFY_FAILED" in report["failures"][0]["detail"]


def test_p99_comes_from_every_request(site):
    port, ca = site
    _, report, _ = loadcheck(
        port, ca, "--clients", "1", "--duration", "2", "--path", "/", "--path", "/slow"
    )
    # Every other request takes 300 ms: the slowest 1 % are among them.
    assert report["failed"] == 0
    assert report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert report["p99_ms"] >= 300


def test_stops_hard_at_the_duration_even_with_hung_requests(site):
    port, ca = site
    _, report, wall = loadcheck(
        port, ca, "--clients", "2", "--duration", "1", "--timeout", "60", "--path", "/hang"
    )
    # duration + the stop's grace + interpreter start, never the 60 s timeout.
    assert wall < 5, wall
    assert report["requests"] == 0 and report["failed"] == 0
    assert report["stopped_by"] == "duration"


def test_stops_on_sigterm_and_still_reports(site):
    port, ca = site
    proc = subprocess.Popen(
        [
            sys.executable,
            str(LOADCHECK),
            f"https://{SITE}:{port}",
            "--resolve",
            f"{SITE}:{port}:127.0.0.1",
            "--cacert",
            str(ca),
            "--duration",
            "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 3
    report = json.loads(out)
    assert report["stopped_by"] == "signal"
    assert report["requests"] > 0 and report["failed"] == 0
    assert "loadcheck:" in err and "failed" in err


def test_refuses_a_site_not_on_loopback(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            str(LOADCHECK),
            "https://www.example.com:443",
            "--resolve",
            "www.example.com:443:192.0.2.10",
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 2
    assert "192.0.2.10 is not a loopback address" in res.stderr
    assert res.stdout == ""


def test_bad_arguments_stop_before_any_request():
    res = subprocess.run(
        [sys.executable, str(LOADCHECK), "http://x", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 2 and "https://" in res.stderr
