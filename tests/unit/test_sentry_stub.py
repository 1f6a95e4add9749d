"""The Sentry-protocol stand-in of the platform tests (tests/platform/sentry_stub.py).

Raw envelopes (plain and gzip, with and without item lengths, the store
endpoint), the key and project checks, the bounded lifetime; and, when
sentry-sdk is importable, an event sent by sentry-sdk itself.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

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


def test_lifetime_is_bounded() -> None:
    stub = SentryStub(lifetime=0.3).start()
    try:
        time.sleep(0.8)
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
