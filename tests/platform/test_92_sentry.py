"""Sentry end to end (operations document §7; issue 16): a real error from the deployed app.

A Sentry-protocol endpoint (tests/platform/sentry_stub.py) runs on the
control node, on the lab network's gateway address; one app server runs
``ocpizza-manage sentry_check --dsn <the stub>`` (the management command made
for that purpose, not a public URL), as the app user, in the live release,
with the app's environment file. The stub must receive the event with the
live release's commit (the basename of ``current``, what ``ocpizza-manage``
exports as OCPIZZA_RELEASE, is ``<build timestamp>-<commit>``; the timestamp
differs between app servers), the configured environment, the command's message, and
nothing of the cookies, passwords and secrets the host holds.

The lab's vault has no Sentry DSN (nothing else in the lab talks to Sentry),
so the environment file holds no SENTRY_ENVIRONMENT: the test passes the
inventory's ``ocpizza_environment``, what app.env.j2 writes when a DSN is set;
the lab's environment file and its playbooks are left alone.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time

import yaml
from conftest import ROOT, SENTRY_PORT, Platform
from sentry_stub import SentryStub

CONTRACT = yaml.safe_load((ROOT / "group_vars" / "all" / "platform_contract.yml").read_text())
CURRENT = f"{CONTRACT['ocpizza_app_root']}/current"
ENV_FILE = f"{CONTRACT['ocpizza_conf_dir']}/app.env"
MESSAGE = "OC Pizza sentry_check: test error"


def _gateway(container: str) -> str:
    """The control node's address on the container's network (its gateway)."""
    res = subprocess.run(
        [
            "podman",
            "inspect",
            container,
            "--format",
            "{{range .NetworkSettings.Networks}}{{.Gateway}} {{end}}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return res.stdout.split()[0]


def _configured_environment(plat: Platform) -> str:
    """The inventory's ocpizza_environment (the app's Sentry environment)."""
    environment = ""
    for path in sorted((plat.inventory / "group_vars" / "all").glob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        if "ocpizza_environment" in data:
            environment = data["ocpizza_environment"]
    assert environment, "no ocpizza_environment in the inventory"
    return environment


def test_an_error_from_the_deployed_app_reaches_sentry(platform: Platform) -> None:
    app = platform.groups["appservers"][0]
    host = platform.host(app)
    environment = _configured_environment(platform)
    env_file = host.run(f"cat {ENV_FILE}").stdout
    # A DSN in the vault would write the environment file's own value.
    configured = re.search(r"^SENTRY_ENVIRONMENT=(.*)$", env_file, re.MULTILINE)
    expected_environment = shlex.split(configured.group(1))[0] if configured else environment
    # Secrets the host holds: none may travel with the event.
    held = re.findall(r"^(\w*(?:SECRET|PASSWORD|TOKEN|KEY|DATABASE_URL)\w*)=(.+)$", env_file, re.M)
    secrets = {  # value -> its name (only names are printed)
        value: name
        for name, value in [*platform.vault().items(), *((n, shlex.split(v)[0]) for n, v in held)]
        if isinstance(value, str) and len(value) >= 12
    }
    assert "SECRET_KEY" in secrets.values(), "the environment file's SECRET_KEY was not read"

    started = time.monotonic()
    with SentryStub(
        host=_gateway(platform.container(app)), port=int(SENTRY_PORT), lifetime=120
    ) as stub:
        live = host.run(f"readlink -f {CURRENT}").stdout.strip().rsplit("/", 1)[-1]
        res = host.run(
            f"env SENTRY_ENVIRONMENT={shlex.quote(environment)} "
            f"ocpizza-manage sentry_check --timeout 20 --dsn {shlex.quote(stub.dsn)}"
        )
        assert res.rc == 0, f"sentry_check failed on {app}: {res.stdout}{res.stderr}"
        match = re.search(r"event ([0-9a-f]{32}) accepted \(marker ([0-9a-f]{32})\)", res.stdout)
        assert match, res.stdout
        event = stub.wait_for_event(lambda e: e.get("event_id") == match[1], timeout=10)
        raw = b"".join(stub.raw).decode("utf-8", "replace")
    print(f"sentry_check round trip on {app}: {time.monotonic() - started:.1f} s")

    # The release directory is <build timestamp>-<commit>; Sentry's release is
    # the commit (the same on every app server, built at different times).
    commit = re.fullmatch(r"\d{14}-([0-9a-f]{7,40})", live)
    assert commit, f"live release {live!r} is not <timestamp>-<commit>"
    assert event["release"] == commit[1], (event["release"], live)
    assert event["environment"] == expected_environment
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "SentryCheckError"
    assert exception["value"].startswith(MESSAGE) and match[2] in exception["value"]
    assert event["sdk"]["name"].startswith("sentry.python")
    # No personal data: no cookies, no authorisation, no secret of the host.
    assert "cookies" not in json.dumps(event)
    assert not re.search(r'"(authorization|cookie)"\s*:', raw, re.IGNORECASE)
    leaked = sorted({name for value, name in secrets.items() if value in raw})
    assert not leaked, f"secrets in the event: {leaked}"
