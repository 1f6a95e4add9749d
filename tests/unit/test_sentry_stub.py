"""The Sentry-protocol stand-in of the platform tests (tests/platform/sentry_stub.py).

Raw envelopes (plain and gzip, with and without item lengths, the store
endpoint), the key and project checks, the bounded lifetime; and, when
sentry-sdk is importable, an event sent by sentry-sdk itself. Then
playbooks/verify.yml's Sentry check (its two tasks, on localhost).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from sentry_stub import EnvelopeError, SentryStub, parse_envelope

EVENT = {"event_id": "a" * 32, "message": "boom", "release": "r1", "environment": "lab"}


def envelope(event: dict, *, length: bool = True) -> bytes:
    payload = json.dumps(event).encode()
    item = {"type": "event", "content_type": "application/json"}
    if length:
        item["length"] = len(payload)
    return b"\n".join(
        [json.dumps({"event_id": event["event_id"]}).encode(), json.dumps(item).encode(), payload]
    )


def post(
    stub: SentryStub,
    body: bytes,
    *,
    key: str | None = None,
    endpoint: str = "envelope",
    project: int | None = None,
    encoding: str | None = None,
) -> int:
    host, port = stub.address
    url = f"http://{host}:{port}/api/{project or stub.project}/{endpoint}/"
    headers = {
        "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key or stub.public_key}, sentry_client=t/1"
    }
    if encoding:
        headers["Content-Encoding"] = encoding
    return send(url, body, headers)


def send(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body``; the HTTP status, error or not."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_parse_envelope_with_and_without_lengths() -> None:
    two = envelope(EVENT) + b"\n" + b'{"type":"attachment","length":3}\nabc\n'
    parsed = parse_envelope(two)
    assert parsed.header == {"event_id": EVENT["event_id"]}
    assert [h["type"] for h, _ in parsed.items] == ["event", "attachment"]
    assert parsed.items[0][1] == EVENT
    assert parsed.items[1][1] == b"abc"
    assert parse_envelope(envelope(EVENT, length=False)).items[0][1] == EVENT
    with pytest.raises(EnvelopeError):
        parse_envelope(b"not json\n")
    with pytest.raises(EnvelopeError):
        parse_envelope(b'{}\n{"type":"event","length":99}\n{}')


def test_records_plain_gzip_and_store_events() -> None:
    with SentryStub() as stub:
        assert post(stub, envelope(EVENT)) == 200
        assert (
            post(stub, gzip.compress(envelope({**EVENT, "message": "zipped"})), encoding="gzip")
            == 200
        )
        store = json.dumps({**EVENT, "message": "stored"}).encode()
        assert post(stub, store, endpoint="store") == 200
        assert [e["message"] for e in stub.events] == ["boom", "zipped", "stored"]
        assert stub.wait_for_event(lambda e: e["message"] == "zipped", timeout=1)["release"] == "r1"


def test_refuses_wrong_key_project_and_garbage() -> None:
    with SentryStub() as stub:
        assert post(stub, envelope(EVENT), key="0" * 32) == 401
        assert post(stub, envelope(EVENT), project=stub.project + 1) == 404
        assert post(stub, b"garbage\n") == 400
        assert post(stub, b"x", encoding="zstd") == 400
        assert stub.events == []
        with pytest.raises(TimeoutError, match="no matching event"):
            stub.wait_for_event(lambda e: True, timeout=0.2)


def api(stub: SentryStub, path: str, body: object, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token or stub.auth_token}"}
    return send(stub.url + path, json.dumps(body).encode(), headers)


def test_records_releases_and_deploys() -> None:
    with SentryStub() as stub:
        releases = f"/api/0/organizations/{stub.organization}/releases/"
        release = {"version": "d652015", "projects": ["ocpizza"]}
        assert api(stub, releases, release, token="0" * 64) == 401
        assert api(stub, "/api/0/organizations/other/releases/", release) == 404
        assert api(stub, f"{releases}d652015/deploys/", {"environment": "lab"}) == 404
        assert api(stub, releases, {"version": "d652015"}) == 400
        assert api(stub, releases, release) == 201
        assert api(stub, releases, release) == 208
        assert api(stub, f"{releases}d652015/deploys/", {}) == 400
        assert api(stub, f"{releases}d652015/deploys/", {"environment": "lab", "name": "x"}) == 201
        assert stub.releases == {"d652015": release}
        assert stub.deploys == [{"environment": "lab", "name": "x", "version": "d652015"}]


def test_lifetime_is_bounded() -> None:
    stub = SentryStub(lifetime=0.1).start()
    try:
        time.sleep(0.4)
        with pytest.raises(OSError):
            post(stub, envelope(EVENT))
    finally:
        stub.stop()


def test_an_event_sent_by_sentry_sdk() -> None:
    sentry_sdk = pytest.importorskip("sentry_sdk")
    with SentryStub() as stub:
        client = sentry_sdk.Client(
            dsn=stub.dsn, release="rel-1", environment="lab", default_integrations=False
        )
        from sentry_sdk.utils import event_from_exception

        try:
            raise RuntimeError("sdk test event")
        except RuntimeError:
            event, hint = event_from_exception(sys.exc_info(), client_options=client.options)
        event_id = client.capture_event(event, hint=hint, scope=sentry_sdk.Scope())
        assert event_id
        client.flush(timeout=5)
        event = stub.wait_for_event(lambda e: e.get("event_id") == event_id, timeout=5)
        client.close()
    assert event["release"] == "rel-1"
    assert event["environment"] == "lab"
    assert event["exception"]["values"][0]["value"] == "sdk test event"


# --- verify.yml's Sentry check --------------------------------------------------
# The two tasks of playbooks/verify.yml, run as they are on localhost with a
# stand-in for ocpizza-manage: the check's result, and the DSN in no output.

ROOT = Path(__file__).resolve().parents[2]
DSN = "https://0123456789abcdef0123456789abcdef@o1.ingest.example.com/42"
FAKE_MANAGE = """#!/bin/sh
if [ "$MODE" = ok ]; then echo "event 0123abcd accepted (marker ffee)"; exit 0; fi
echo "CommandError: event 0123abcd not delivered: HTTPSConnectionPool for {dsn}" >&2
exit 1
"""


# (mode of the stand-in, whether the environment file holds SENTRY_DSN) per case.
CASES = {"accepted": ("ok", True), "refused": ("fail", True), "not configured": ("ok", False)}


@pytest.fixture(scope="module")
def verify_sentry(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, list], str]:
    """The checks each case records, and the run's whole output (one ansible-playbook run)."""
    tmp_path = tmp_path_factory.mktemp("verify-sentry")
    # verify.yml runs role monitoring's verify entry point on the app servers.
    entry = yaml.safe_load((ROOT / "roles" / "monitoring" / "tasks" / "verify.yml").read_text())
    tasks = [t for t in entry if "Sentry" in t["name"]]
    assert len(tasks) == 2, [t["name"] for t in tasks]
    manage = tmp_path / "ocpizza-manage"
    manage.write_text(FAKE_MANAGE.format(dsn=DSN))
    manage.chmod(0o755)
    plays = []
    for number, (case, (mode, configured)) in enumerate(CASES.items()):
        reset = {"name": "Start with no checks", "ansible.builtin.set_fact": {"ocpizza_checks": []}}
        write = {
            "name": "Write the checks",
            "ansible.builtin.copy": {
                "content": "{{ ocpizza_checks | to_json }}",
                "dest": str(tmp_path / f"checks-{number}.json"),
                "mode": "0600",
            },
        }
        plays.append(
            {
                "name": case,
                "hosts": "appservers",
                "gather_facts": False,
                "environment": {"MODE": mode},
                "vars": {
                    "ocpizza_app_manage": str(manage),
                    "monitoring_app_group": "appservers",
                    "monitoring__optional_set": {
                        "stdout_lines": ["SENTRY_DSN"] if configured else []
                    },
                },
                "tasks": [reset, *tasks, write],
            }
        )
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays))
    (tmp_path / "hosts").write_text(
        f"[appservers]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    env.pop("ANSIBLE_CONFIG", None)
    res = subprocess.run(
        ["ansible-playbook", "-v", "-i", str(tmp_path / "hosts"), str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    checks = {
        case: json.loads((tmp_path / f"checks-{number}.json").read_text())
        for number, case in enumerate(CASES)
    }
    return checks, res.stdout + res.stderr


def test_verify_records_an_accepted_event(verify_sentry: tuple[dict[str, list], str]) -> None:
    assert verify_sentry[0]["accepted"] == [
        {
            "name": "Sentry accepts an event from localhost",
            "ok": True,
            "detail": "event 0123abcd accepted",
        }
    ]


def test_verify_records_a_refusal_without_the_dsn(
    verify_sentry: tuple[dict[str, list], str],
) -> None:
    checks, output = verify_sentry
    [check] = checks["refused"]
    assert check["ok"] is False
    assert check["detail"].startswith("not accepted: CommandError: event 0123abcd not delivered")
    assert "o1.ingest.example.com/42" in check["detail"]  # where, but not the key
    assert "0123456789abcdef0123456789abcdef" not in json.dumps(checks)
    assert "0123456789abcdef0123456789abcdef" not in output


def test_verify_skips_sentry_when_not_configured(
    verify_sentry: tuple[dict[str, list], str],
) -> None:
    assert verify_sentry[0]["not configured"] == []
