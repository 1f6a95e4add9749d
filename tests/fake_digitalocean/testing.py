"""Helpers for the DigitalOcean tests: run Ansible against the fake API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .server import DEFAULT_TOKEN, FakeConfig, FakeDigitalOcean

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# A real (throw-away, never used to log in) ed25519 public key.
TEST_PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl "
    "ocpizza-tests@example"
)
# What the fake's catalogue charges for the three default droplets (48 + 24 + 24).
DEFAULT_MONTHLY_COST = 96.0


def module_params(**overrides: Any) -> dict[str, Any]:
    """digitalocean_environment's parameters as AnsibleModule fills them in, for build_spec."""
    params: dict[str, Any] = {
        "project": "ocpizza",
        "environment": "staging",
        "region": "fra1",
        "image": "ubuntu-24-04-x64",
        "vpc": {},
        "ssh_keys": [],
        "ssh_sources": [],
        "ssh_port": 22,
        "tags": [],
        "monitoring": True,
        "ipv6": False,
        "backups": False,
        "user_data": None,
        "wait": True,
        "wait_timeout": 600,
        "poll_interval": 5.0,
        "groups": [],
    }
    params.update(overrides)
    return params


def group_params(name: str, **overrides: Any) -> dict[str, Any]:
    """One element of the ``groups`` parameter as AnsibleModule fills it in."""
    group: dict[str, Any] = {
        "name": name,
        "hostname_prefix": None,
        "count": 1,
        "size": "s-2vcpu-4gb",
        "image": None,
        "firewall_allowed": [],
        "firewall_inbound": [],
    }
    group.update(overrides)
    return group


def ansible_env(fake: FakeDigitalOcean, token: str | None = DEFAULT_TOKEN) -> dict[str, str]:
    """Environment for an Ansible subprocess that can reach only the fake API."""
    assert fake.url.startswith("http://127.0.0.1:"), "tests talk to the local fake only"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "DO_API"))}
    env.update(
        DIGITALOCEAN_END_POINT=fake.url,
        PYTHON_DIGITALOCEAN_REQUEST_TIMEOUT_SEC="10",
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    if token is not None:
        env["DIGITALOCEAN_TOKEN"] = token
    return env


def write_extra_vars(tmp_path: Path, **overrides: Any) -> Path:
    """An extra-vars file: the test key, fast polling, no SSH wait (fake hosts have no SSH)."""
    data: dict[str, Any] = {
        "ocpizza_do_ssh_keys": [{"name": "ocpizza-tests", "public_key": TEST_PUBLIC_KEY}],
        "ocpizza_do_poll_interval": 0.1,
        "ocpizza_do_wait_timeout": 30,
        "ocpizza_do_request_timeout": 10,
        "ocpizza_do_wait_for_ssh": False,
    }
    data.update(overrides)
    path = tmp_path / "extra-vars.json"
    path.write_text(json.dumps(data))
    return path


def playbook_command(
    playbook: str, *args: str, inventory: str = "inventories/staging"
) -> list[str]:
    """``ansible-playbook -i <inventory> playbooks/<playbook> <args>``."""
    return [str(VENV_BIN / "ansible-playbook"), "-i", inventory, f"playbooks/{playbook}", *args]


def run(
    command: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root, so that ansible.cfg applies."""
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)",
    re.MULTILINE,
)


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counters of every host."""
    return {
        m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
        for m in RECAP.finditer(output)
    }


def unwrap(data: Any) -> Any:
    """Drop ansible-inventory's ``{"__ansible_unsafe": value}`` wrappers."""
    if isinstance(data, dict):
        if set(data) == {"__ansible_unsafe"}:
            return data["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in data.items()}
    if isinstance(data, list):
        return [unwrap(v) for v in data]
    return data


@contextmanager
def serving(monkeypatch: pytest.MonkeyPatch, config: FakeConfig) -> Iterator[FakeDigitalOcean]:
    """The fake API, which in-process code (the module, the inventory plugin) finds
    through DIGITALOCEAN_END_POINT and DIGITALOCEAN_TOKEN."""
    with FakeDigitalOcean(config) as server:
        monkeypatch.setenv("DIGITALOCEAN_END_POINT", server.url)
        monkeypatch.setenv("DIGITALOCEAN_TOKEN", DEFAULT_TOKEN)
        yield server


def run_module_in_process(
    capsys: pytest.CaptureFixture[str], params: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """digitalocean_environment's main() with ``params``: its result and its raw output."""
    from ansible.module_utils.testing import patch_module_args
    from ocpizza_digitalocean import module_args

    with patch_module_args(params), pytest.raises(SystemExit):
        module_args.main()
    out = capsys.readouterr().out
    return json.loads(out), out
