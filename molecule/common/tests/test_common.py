"""Behaviour of role `common` that an operator relies on."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import container_ip, ephemeral_dir

# The scenario's one host: Debian 12, or the release make test-full asks for.
HOSTS = [f"ocpizza-mol-common-{os.environ.get('OCPIZZA_MOL_SUITE') or 'bookworm'}"]


def ssh(name: str, user: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Try an SSH login from the control node, as an operator would."""
    return subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            *extra,
            f"{user}@{container_ip(name)}",
            "id -un; sudo -n true && echo sudo-ok",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
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
        name,
        "pwuser",
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
        "-o",
        "PubkeyAuthentication=no",
    )
    assert res.returncode == 255
    assert "Permission denied (publickey)" in res.stderr, res.stderr


@pytest.mark.parametrize("name", HOSTS)
def test_sshd_effective_settings(get_host, name: str) -> None:
    cfg = get_host(name).check_output("sshd -T")
    assert "passwordauthentication no" in cfg
    assert "kbdinteractiveauthentication no" in cfg
    # Finding 16: root's login closed (the scenario connects over podman, so
    # the role closes it at once; over SSH, site.yml's last play does).
    assert "permitrootlogin no" in cfg
    # lynis SSH-7408: no forwarding or compression, 3 tries, verbose log.
    for setting in (
        "allowtcpforwarding no", "compression no", "maxauthtries 3",
        "loglevel VERBOSE", "tcpkeepalive no", "maxsessions 4",
    ):  # fmt: skip
        assert setting in cfg.splitlines(), setting


@pytest.mark.parametrize("name", HOSTS)
def test_root_is_refused_and_keeps_no_key(get_host, name: str) -> None:
    # prepare.yml gave root the admin's key, as a provider gives root its key.
    assert not get_host(name).file("/root/.ssh/authorized_keys").exists
    res = ssh(name, "root", "-i", str(ephemeral_dir() / "admin_ed25519"))
    assert res.returncode == 255 and "Permission denied" in res.stderr, res.stderr


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


@pytest.mark.parametrize("name", HOSTS)
def test_hardening_is_in_place(get_host, name: str) -> None:
    """What lynis measures, checked directly (fast): kernel settings written
    (applied on a server; a container's are its host's), modules that never
    load, no core dumps, login defaults, banners, PAM's password checks."""
    host = get_host(name)
    sysctl = host.file("/etc/sysctl.d/60-ocpizza-hardening.conf").content_string
    for setting in (
        "fs.protected_hardlinks = 1",
        "kernel.kptr_restrict = 2",
        "net.ipv4.tcp_syncookies = 1",
    ):
        assert setting in sysctl.splitlines(), setting
    modprobe = host.file("/etc/modprobe.d/ocpizza-hardening.conf").content_string.splitlines()
    for module in ("usb-storage", "firewire-core", "dccp", "sctp"):
        assert f"blacklist {module}" in modprobe and f"install {module} /bin/false" in modprobe
    assert host.check_output("bash -c 'ulimit -Hc'") == "0" or host.file(
        "/etc/security/limits.d/ocpizza-core.conf"
    ).contains("hard    core    0")
    lines = host.check_output(
        "grep -E '^(UMASK|PASS_MIN_DAYS|SHA_CRYPT_MIN_ROUNDS)\\s' /etc/login.defs"
    )
    defs = dict(line.split() for line in lines.splitlines())
    assert defs == {"UMASK": "027", "SHA_CRYPT_MIN_ROUNDS": "65536", "PASS_MIN_DAYS": "1"}
    assert "Authorised access only" in host.file("/etc/issue.net").content_string
    assert host.check_output("bash -lic 'echo $TMOUT' 2>/dev/null") == "900"
    for package in ("libpam-pwquality", "debsums", "needrestart", "lynis"):
        assert host.package(package).is_installed, package
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string
    # needrestart lists, never restarts a service on its own.
    assert (
        "$nrconf{restart} = 'l';"
        in host.file("/etc/needrestart/conf.d/ocpizza.conf").content_string
    )
    # The lynis profile skips only what a container cannot pass, saying why.
    profile = host.file("/etc/lynis/custom.prf").content_string
    skipped = sorted(
        line.split("=", 1)[1] for line in profile.splitlines() if line.startswith("skip-test=")
    )
    assert skipped == ["ACCT-9628", "FILE-6344", "KRNL-6000", "TIME-3104"]


@pytest.mark.full
@pytest.mark.skipif(
    os.environ.get("OCPIZZA_FULL") != "1",
    reason="make test-full only (OCPIZZA_FULL=1): lynis takes minutes",
)
@pytest.mark.parametrize("name", HOSTS)
def test_lynis_hardening_index_is_at_least_80(get_host, name: str) -> None:
    """lynis (Debian's package) on the role's baseline: hardening index >= 80."""
    host = get_host(name)
    host.check_output("lynis audit system --quick --no-colors > /var/log/lynis-molecule.txt 2>&1")
    report = host.file("/var/log/lynis-report.dat").content_string
    index = int(
        next(line for line in report.splitlines() if line.startswith("hardening_index=")).split(
            "="
        )[1]
    )
    print(f"{name}: lynis hardening index {index}")
    assert index >= 80
