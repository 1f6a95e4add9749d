"""Issue 15, finding 16 on the HA lab: after the first converge, root cannot log in over SSH.

The platform's first converge (conftest.py) runs ``site.yml`` on the production
inventory as shipped, whose ``ansible_user`` is ``deploy``: that account does not
exist yet, so the run logs in as root with the lab's key (the provider's key in
production) by itself, and its last play closes root's login once ``deploy``
logs in and becomes root. Every later run of the platform logs in as ``deploy``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import testinfra
from conftest import LOGS, ROOT, Platform, output


def _ssh(platform: Platform, user: str, host: str, command: str) -> subprocess.CompletedProcess:
    """One SSH login from the control node with the lab's key (the key root had)."""
    lab = platform.lab_dir
    options = {
        "IdentitiesOnly": "yes",
        "BatchMode": "yes",
        "UserKnownHostsFile": str(lab / "known_hosts"),
        "StrictHostKeyChecking": "yes",
        "ConnectTimeout": "10",
        "ControlPath": "none",
    }
    args = [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]
    return subprocess.run(
        ["ssh", "-i", str(lab / "id_ed25519"), *args, f"{user}@{host}", command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def every_host(platform: Platform) -> list[tuple[str, str]]:
    """(inventory name, address) of every host the converge reached, stand-ins included."""
    out = [(host, platform.ip(host)) for hosts in platform.groups.values() for host in hosts]
    assert len(out) >= 7, out
    return out


def test_root_is_refused_with_the_key_it_logged_in_with(
    platform: Platform, every_host: list[tuple[str, str]]
) -> None:
    refused = {}
    for name, ip in every_host:
        res = _ssh(platform, "root", ip, "true")
        refused[name] = res.returncode == 255 and "Permission denied" in res.stderr
    assert all(refused.values()), refused


def test_the_admin_logs_in_and_becomes_root(
    platform: Platform, every_host: list[tuple[str, str]]
) -> None:
    for name, ip in every_host:
        res = _ssh(platform, "deploy", ip, "sudo -n id -u")
        assert res.returncode == 0 and res.stdout.strip() == "0", (name, res.stderr)


def test_sshd_refuses_root_and_root_keeps_no_key(platform: Platform) -> None:
    for container in sorted(set(platform.containers.values())):
        host = platform.host(container)
        settings = host.check_output("sshd -T").splitlines()
        assert "permitrootlogin no" in settings, container
        assert not host.file("/root/.ssh/authorized_keys").exists, container


def test_the_first_converge_logged_in_as_root_then_closed_it(
    platform: Platform, every_host: list[tuple[str, str]]
) -> None:
    log = (LOGS / "platform-converge.log").read_text()
    fell_back = set(
        re.findall(
            r"TASK \[common : Log in as the bootstrap account on a first converge\].*?(?=TASK \[)",
            log,
            re.S,
        )
    )
    assert fell_back, "the first converge never logged in as root"
    text = "".join(fell_back)
    # The last play: the admin's check, then sshd's drop-in (PermitRootLogin no).
    closing = log.split("TASK [common : Refuse to close root's login when", 1)
    assert len(closing) == 2, "the first converge's last play never closed root's login"
    closed = closing[1].split("TASK [common : Configure sshd]", 1)[-1].split("TASK [", 1)[0]
    for name, _ in every_host:
        assert re.search(rf"ok: \[{re.escape(name)}\]", text), name
        assert re.search(rf"changed: \[{re.escape(name)}\]", closed), name


def test_root_stays_open_while_the_admin_cannot_log_in_and_closes_once_it_can(
    platform: Platform, tmp_path: Path
) -> None:
    """The lock-out guard, on the forge: an admin key lost, root reopened from the console."""
    forge = platform.groups["forge"][0]
    host = platform.host(forge)
    pub = (platform.lab_dir / "id_ed25519.pub").read_text().strip()
    # What an operator does from the provider's console when every admin key is lost.
    host.check_output(
        "rm -f /home/deploy/.ssh/authorized_keys && install -d -m 700 /root/.ssh"
        f" && echo {shlex.quote(pub)} > /root/.ssh/authorized_keys"
        " && sed -i 's/^PermitRootLogin .*/PermitRootLogin prohibit-password/'"
        " /etc/ssh/sshd_config.d/00-ocpizza.conf && systemctl reload ssh"
    )
    assert _ssh(platform, "root", platform.ip(forge), "true").returncode == 0
    try:
        _check_the_guard_then_recover(platform, forge, host, tmp_path)
    finally:
        # Whatever happened, the forge as the other tests need it: deploy's key, root closed.
        host.run(
            "install -d -m 700 -o deploy -g deploy /home/deploy/.ssh"
            f" && echo {shlex.quote(pub)} > /home/deploy/.ssh/authorized_keys"
            " && chown deploy:deploy /home/deploy/.ssh/authorized_keys"
            " && rm -f /root/.ssh/authorized_keys"
            " && sed -i 's/^PermitRootLogin .*/PermitRootLogin no/'"
            " /etc/ssh/sshd_config.d/00-ocpizza.conf && systemctl reload ssh"
        )


def _close_multiplexed_connections() -> None:
    """A new operator session: no SSH connection of an earlier run stays open to reuse."""
    for socket in (ROOT / ".ansible" / "cp").glob("*"):
        subprocess.run(
            ["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "lab"],
            capture_output=True,
            timeout=10,
            check=False,
        )


def _check_the_guard_then_recover(
    platform: Platform, forge: str, host: testinfra.host.Host, tmp_path: Path
) -> None:
    _close_multiplexed_connections()
    # A run whose admin key is not the one it logs in with: root must stay open.
    other = tmp_path / "other_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = {
        "common_admin_users": [
            {"name": "deploy", "ssh_keys": [other.with_suffix(".pub").read_text().strip()]}
        ]
    }
    res = platform.playbook(
        "site.yml", "--limit", forge, "--tags", "common", "-e", json.dumps(wrong)
    )
    text = output(res)
    assert res.returncode != 0, text[-2000:]
    assert f"root's SSH login stays open on {forge}: deploy" in text, text[-3000:]
    assert _ssh(platform, "root", platform.ip(forge), "true").returncode == 0

    # The inventory's key again: the run logs in as root, restores deploy's key, closes root.
    _close_multiplexed_connections()
    res = platform.playbook("site.yml", "--limit", forge, "--tags", "common")
    assert res.returncode == 0, output(res)[-3000:]
    assert "Permission denied" in _ssh(platform, "root", platform.ip(forge), "true").stderr
    assert _ssh(platform, "deploy", platform.ip(forge), "sudo -n true").returncode == 0
    assert not host.file("/root/.ssh/authorized_keys").exists
