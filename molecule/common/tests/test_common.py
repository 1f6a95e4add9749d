"""Behaviour of role `common` that an operator relies on."""

from __future__ import annotations

import subprocess

import pytest
from conftest import container_ip, ephemeral_dir

HOSTS = ["ocpizza-mol-common-bookworm", "ocpizza-mol-common-trixie"]


def ssh(name: str, user: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Try an SSH login from the control node, as an operator would."""
    return subprocess.run(
        [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
            *extra, f"{user}@{container_ip(name)}", "id -un; sudo -n true && echo sudo-ok",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize("name", HOSTS)
def test_admin_logs_in_with_key_and_has_sudo(name: str) -> None:
    res = ssh(name, "opsadmin", "-i", str(ephemeral_dir() / "admin_ed25519"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["opsadmin", "sudo-ok"]


@pytest.mark.parametrize("name", HOSTS)
def test_password_authentication_is_refused(name: str) -> None:
    # sshpass is not needed: the server must not even offer password auth.
    res = ssh(
        name, "pwuser", "-o", "PreferredAuthentications=password,keyboard-interactive",
        "-o", "PubkeyAuthentication=no",
    )
    assert res.returncode == 255
    assert "Permission denied (publickey)" in res.stderr, res.stderr


@pytest.mark.parametrize("name", HOSTS)
def test_sshd_effective_settings(get_host, name: str) -> None:
    cfg = get_host(name).check_output("sshd -T")
    assert "passwordauthentication no" in cfg
    assert "kbdinteractiveauthentication no" in cfg
    assert "permitrootlogin without-password" in cfg


@pytest.mark.parametrize("name", HOSTS)
def test_removed_admin_is_gone(get_host, name: str) -> None:
    assert not get_host(name).user("formeradmin").exists


@pytest.mark.parametrize("name", HOSTS)
def test_timezone_and_locale_in_effect(get_host, name: str) -> None:
    host = get_host(name)
    assert host.check_output("date +%Z") in {"CET", "CEST"}
    assert host.file("/etc/localtime").linked_to.endswith("Europe/Paris")
    locales = host.check_output("locale -a").lower().split()
    assert {"fr_fr.utf8", "en_us.utf8"} <= set(locales)
    out = host.check_output("bash -lc 'LANG=fr_FR.UTF-8 date -d 2026-01-05 +%A'")
    assert out == "lundi"


@pytest.mark.parametrize("name", HOSTS)
def test_journal_is_persistent(get_host, name: str) -> None:
    host = get_host(name)
    assert host.file("/var/log/journal").is_directory
    assert "Storage=persistent" in host.check_output(
        "systemd-analyze cat-config systemd/journald.conf"
    )


@pytest.mark.parametrize("name", HOSTS)
def test_unattended_security_upgrades_without_reboot(get_host, name: str) -> None:
    host = get_host(name)
    cfg = host.check_output("apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in cfg
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in cfg
