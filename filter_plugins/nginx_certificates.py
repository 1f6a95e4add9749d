"""Checks of TLS certificates for the nginx role."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

DOCUMENTATION = r"""
name: nginx_certificate_problems
short_description: What is wrong with a TLS server certificate, if anything
description:
  - Reads a PEM certificate (the first one of a chain) and returns the list of
    reasons it cannot be served as is; an empty list means it is fine.
  - The role C(nginx) uses it to decide whether a certificate issued by the
    local CA must be issued again (missing, expiring within
    O(renew_before_days), names changed, issued by another CA, not matching
    the host's key), and to refuse a provided certificate that does not cover
    the site's names, does not match its key or has expired.
positional: _input, names
options:
  _input:
    description:
      - PEM text of the certificate, optionally followed by its chain.
      - Empty means "no certificate yet".
    type: str
    required: true
  names:
    description: DNS names the certificate must carry.
    type: list
    elements: str
    required: true
  ip_addresses:
    description:
      - IP addresses the certificate must carry (subject alternative names of type IP),
        compared as addresses; with O(exact) exactly these. Unset, they are not checked.
      - The role C(mysql) names its server's private address this way.
    type: list
    elements: str
  exact:
    description:
      - If true the certificate's DNS names must be exactly O(names) (a certificate
        the role issues itself is issued again when a name is added or removed),
        and its IP addresses exactly O(ip_addresses) when given.
      - If false every name must be covered, wildcards allowed (a provided certificate).
    type: bool
    default: false
  ca:
    description: PEM of the CA that must have signed the certificate directly.
    type: str
  private_key:
    description: PEM of the private key the certificate must match (unencrypted).
    type: str
  public_key:
    description: PEM of the public key the certificate must match.
    type: str
  renew_before_days:
    description: Report a certificate that expires within this many days.
    type: int
    default: 0
"""

EXAMPLES = r"""
# nginx__current_cert: a certificate slurped from the web host (b64decode'd).
nginx__problems: >-
  {{ nginx__current_cert
     | nginx_certificate_problems(['www.ocpizza.com', 'ocpizza.com'], exact=true,
                                  ca=lookup('ansible.builtin.file', '.lab/ca.crt'),
                                  renew_before_days=30) }}
"""

RETURN = r"""
_value:
  description: Human-readable reasons; empty when the certificate can be used as is.
  type: list
  elements: str
"""


def _public_bytes(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _covers(pattern: str, name: str) -> bool:
    """True if a certificate name (maybe a wildcard) covers a host name."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if pattern.startswith("*."):
        head, _, tail = name.partition(".")
        return bool(head) and tail == pattern[2:]
    return False


def _alt_names(cert: Any, kind: type) -> list[Any]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value.get_values_for_type(kind))


def _dns_names(cert: Any) -> list[str]:
    return [str(n) for n in _alt_names(cert, x509.DNSName)]


def _address_problems(cert: Any, wanted: Any, exact: bool) -> list[str]:
    """The certificate's IP subject alternative names against ``wanted``."""
    try:
        want = {ipaddress.ip_address(str(a)) for a in wanted}
    except ValueError as exc:
        raise AnsibleFilterError(
            f"nginx_certificate_problems: ip_addresses must be IP addresses ({exc})"
        ) from None
    have = set(_alt_names(cert, x509.IPAddress))
    problems = []
    missing = sorted(str(a) for a in want - have)
    if missing:
        listed = ", ".join(sorted(str(a) for a in have)) or "none"
        problems.append(f"does not carry the addresses {', '.join(missing)} (it has {listed})")
    extra = sorted(str(a) for a in have - want)
    if exact and extra:
        problems.append(f"addresses no longer wanted: {', '.join(extra)}")
    return problems


def certificate_problems(
    pem: Any,
    names: Any,
    exact: bool = False,
    ca: str | None = None,
    private_key: str | None = None,
    public_key: str | None = None,
    renew_before_days: int = 0,
    now: dt.datetime | None = None,
    ip_addresses: Any = None,
) -> list[str]:
    """Return why the certificate ``pem`` cannot be served for ``names``."""
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names or []):
        raise AnsibleFilterError(
            f"nginx_certificate_problems: names must be a list of host names, got {names!r}"
        )
    if not pem or not str(pem).strip():
        return ["no certificate yet"]
    try:
        cert = x509.load_pem_x509_certificates(str(pem).encode())[0]
    except ValueError as exc:
        return [f"not a PEM certificate ({exc})"]

    problems: list[str] = []
    now = now or dt.datetime.now(dt.UTC)
    not_after = cert.not_valid_after_utc
    if cert.not_valid_before_utc > now:
        problems.append(f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if not_after <= now:
        problems.append(f"expired on {not_after:%Y-%m-%d}")
    elif not_after - now < dt.timedelta(days=int(renew_before_days)):
        days = (not_after - now).days
        problems.append(
            f"expires on {not_after:%Y-%m-%d}, in {days} days (renewal is due "
            f"{int(renew_before_days)} days before)"
        )

    have = _dns_names(cert)
    missing = [n for n in names if not any(_covers(p, n) for p in have)]
    if missing:
        problems.append(f"does not cover {', '.join(missing)} (it has {', '.join(have) or 'none'})")
    if exact:
        wanted = {n.lower().rstrip(".") for n in names}
        extra = sorted({h.lower().rstrip(".") for h in have} - wanted)
        if extra:
            problems.append(f"names no longer wanted: {', '.join(extra)}")
    if ip_addresses is not None:
        problems += _address_problems(cert, ip_addresses, exact)

    if ca:
        try:
            ca_cert = x509.load_pem_x509_certificates(str(ca).encode())[0]
        except ValueError as exc:
            raise AnsibleFilterError(f"nginx_certificate_problems: bad CA PEM ({exc})") from exc
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature) as exc:
            reason = str(exc) or "bad signature"
            problems.append(f"not issued by the CA {ca_cert.subject.rfc4514_string()} ({reason})")

    key_pem = private_key or public_key
    if key_pem:
        try:
            if private_key:
                key = serialization.load_pem_private_key(str(private_key).encode(), None)
                mine = _public_bytes(key.public_key())
            else:
                mine = _public_bytes(serialization.load_pem_public_key(str(public_key).encode()))
        except (ValueError, TypeError) as exc:
            # Never echo key material: only the kind of error.
            raise AnsibleFilterError(
                f"nginx_certificate_problems: the key is not a usable unencrypted PEM key "
                f"({type(exc).__name__})"
            ) from None
        if mine != _public_bytes(cert.public_key()):
            problems.append("does not match the private key")
    return problems


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        """Map filter names to functions."""
        return {"nginx_certificate_problems": certificate_problems}
