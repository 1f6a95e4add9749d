from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nginx_certificates import FilterModule, certificate_problems

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
NAMES = ["www.ocpizza.com", "ocpizza.com"]


def _pem(obj) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str = "Test CA"):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=10))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


CA_KEY, CA_CERT = _ca()
LEAF_KEY = ec.generate_private_key(ec.SECP256R1())


def _leaf(
    names=NAMES, days_left=300, ca=(CA_KEY, CA_CERT), key=LEAF_KEY, start_days=-1, addresses=()
):
    ca_key, ca_cert = ca
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0] if names else "no-san"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=start_days))
        .not_valid_after(NOW + dt.timedelta(days=days_left))
    )
    if names or addresses:
        alt = [x509.DNSName(n) for n in names]
        alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return _pem(builder.sign(ca_key, hashes.SHA256()))


def problems(pem, names=NAMES, **kw):
    kw.setdefault("now", NOW)
    return certificate_problems(pem, names, **kw)


def test_good_certificate_has_no_problem():
    pem = _leaf()
    assert (
        problems(
            pem, exact=True, ca=_pem(CA_CERT), private_key=_pem(LEAF_KEY), renew_before_days=30
        )
        == []
    )


def test_chain_is_read_from_its_first_certificate():
    assert problems(_leaf() + _pem(CA_CERT), exact=True, ca=_pem(CA_CERT)) == []


@pytest.mark.parametrize("pem", ["", "   \n", None])
def test_missing_certificate_is_reported(pem):
    assert problems(pem) == ["no certificate yet"]


def test_garbage_is_reported_not_raised():
    [msg] = problems("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    assert msg.startswith("not a PEM certificate")


def test_expiring_certificate_is_due_for_renewal():
    [msg] = problems(_leaf(days_left=10), renew_before_days=30)
    assert "in 10 days" in msg and "renewal is due 30 days before" in msg
    assert problems(_leaf(days_left=10), renew_before_days=5) == []


def test_expired_and_not_yet_valid():
    assert problems(_leaf(days_left=-1, start_days=-30))[0].startswith("expired on")
    assert problems(_leaf(start_days=2))[0].startswith("not valid before")


def test_missing_name_is_reported():
    [msg] = problems(_leaf(names=["www.ocpizza.com"]))
    assert msg.startswith("does not cover ocpizza.com")


def test_extra_name_matters_only_when_exact():
    pem = _leaf(names=[*NAMES, "old.ocpizza.com"])
    assert problems(pem) == []
    assert problems(pem, exact=True) == ["names no longer wanted: old.ocpizza.com"]


def test_wildcards_cover_one_label_when_not_exact():
    pem = _leaf(names=["*.ocpizza.com", "ocpizza.com"])
    assert problems(pem) == []
    [msg] = problems(pem, names=["a.b.ocpizza.com"])
    assert msg.startswith("does not cover a.b.ocpizza.com")


def test_names_compare_case_and_trailing_dot_insensitively():
    assert problems(_leaf(names=["WWW.ocpizza.com", "ocpizza.com."]), exact=True) == []


def test_certificate_without_san_covers_nothing():
    [msg] = problems(_leaf(names=[]))
    assert "it has none" in msg


def test_other_ca_is_reported():
    other = _ca("Other CA")
    [msg] = problems(_leaf(ca=other), ca=_pem(CA_CERT))
    assert msg.startswith("not issued by the CA CN=Test CA")


def test_key_mismatch_is_reported_without_leaking_the_key():
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert problems(_leaf(), private_key=_pem(other_key)) == ["does not match the private key"]
    public = (
        other_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert problems(_leaf(), public_key=public) == ["does not match the private key"]


def test_bad_private_key_raises_without_its_content():
    # A key's PEM armour, generated here, around a body that is not a key.
    armour = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
        .splitlines()
    )
    secret = f"{armour[0]}\nc2VjcmV0LWtleQ==\n{armour[-1]}\n"
    with pytest.raises(AnsibleFilterError) as err:
        problems(_leaf(), private_key=secret)
    assert "c2VjcmV0" not in str(err.value)


def test_several_problems_are_all_listed():
    other = _ca("Other CA")
    found = problems(
        _leaf(names=["www.ocpizza.com"], days_left=3, ca=other),
        ca=_pem(CA_CERT),
        renew_before_days=30,
    )
    assert len(found) == 3


@pytest.mark.parametrize("names", ["www.ocpizza.com", [""], [None]])
def test_bad_names_are_refused(names):
    with pytest.raises(AnsibleFilterError, match="names must be a list"):
        certificate_problems(_leaf(), names)


def test_ip_addresses_are_checked_only_when_given():
    # The mysql role's server certificate names the host's private address.
    pem = _leaf(names=["db1.ocpizza.com"], addresses=["10.110.0.11"])
    assert problems(pem, ["db1.ocpizza.com"], exact=True) == []
    assert problems(pem, ["db1.ocpizza.com"], exact=True, ip_addresses=["10.110.0.11"]) == []
    assert problems(pem, ["db1.ocpizza.com"], exact=True, ip_addresses=["10.110.0.12"]) == [
        "does not carry the addresses 10.110.0.12 (it has 10.110.0.11)",
        "addresses no longer wanted: 10.110.0.11",
    ]
    # Not exact: an extra address does not matter, a missing one does.
    assert problems(pem, ["db1.ocpizza.com"], ip_addresses=[]) == []
    assert problems(pem, ["db1.ocpizza.com"], exact=True, ip_addresses=[]) == [
        "addresses no longer wanted: 10.110.0.11"
    ]
    with pytest.raises(AnsibleFilterError, match="ip_addresses must be IP addresses"):
        problems(pem, ["db1.ocpizza.com"], ip_addresses=["db1"])


def test_registered_name():
    assert FilterModule().filters()["nginx_certificate_problems"] is certificate_problems
