"""The shared platform run: one HA lab, converged once from the production inventory.

``make test`` builds the production-shaped lab (``playbooks/lab.yml -e
lab_topology=ha``: a load balancer, two web servers, two app servers, a
database server, the monitoring host and the forge), then converges it with ``site.yml`` from
``inventories/production`` *as shipped*, with an overlay of only what cannot
exist here (see :data:`OVERLAY_KEYS`). Every platform-level test module of
this directory runs against that one converged lab.

Environment:
    OCPIZZA_PLATFORM_KEEP=1    keep the lab after the run (to look at it)
    OCPIZZA_PLATFORM_REUSE=1   use the lab and the converge of an earlier kept run
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import testinfra
import yaml

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "inventories" / "production"

PREFIX = os.environ.get("OCPIZZA_PLATFORM_PREFIX", "ocpizza-plat")
SUBNET = os.environ.get("OCPIZZA_PLATFORM_SUBNET", "10.89.52.0/24")
HTTP_PORT = os.environ.get("OCPIZZA_PLATFORM_HTTP_PORT", "28080")
HTTPS_PORT = os.environ.get("OCPIZZA_PLATFORM_HTTPS_PORT", "28443")
# Port of the control node, on the lab network's gateway, where Alertmanager
# posts the alerts (test_94_alerts.py runs the receiver).
WEBHOOK_PORT = os.environ.get("OCPIZZA_PLATFORM_WEBHOOK_PORT", str(int(HTTP_PORT) + 10))
# Port of the control node, on the same gateway, where test_92_sentry.py runs
# its Sentry stub (a fixed port: the hosts' egress policy opens it, finding 17).
SENTRY_PORT = os.environ.get("OCPIZZA_PLATFORM_SENTRY_PORT", str(int(HTTP_PORT) + 11))
LAB_DIR = Path(os.environ.get("OCPIZZA_PLATFORM_DIR", str(ROOT / ".ansible" / "platform-lab")))
# Logs of the default run in .ansible/logs; a run under another prefix (a
# developer's second lab) keeps its own, so two runs never write one log.
LOGS = ROOT / ".ansible" / "logs" / ("" if PREFIX == "ocpizza-plat" else PREFIX)
KEEP = os.environ.get("OCPIZZA_PLATFORM_KEEP") == "1"
REUSE = os.environ.get("OCPIZZA_PLATFORM_REUSE") == "1"

# The production groups the overlay maps onto the lab's hosts (n-th host of
# the production group -> n-th lab host of the same group), and the lab's
# stand-ins that production does not have as hosts (GitHub, the DigitalOcean
# Load Balancer).
MAPPED_GROUPS = ("dbservers", "appservers", "webservers", "monitoring")
STAND_IN_GROUPS = ("forge", "loadbalancers")

# The lab's monitoring delays: short enough for test_94_alerts.py to see an
# alert and its resolution within a minute (production keeps the role's defaults).
LAB_MONITORING_TIMINGS = {
    "monitoring_scrape_interval": "5s",
    # Each probe of /admin/ loads the login page, rate-limited to 10 a minute per client.
    "monitoring_probe_interval": "10s",
    "monitoring_evaluation_interval": "5s",
    "monitoring_alert_site_down_for": "15s",
    "monitoring_alert_group_wait": "5s",
    "monitoring_alert_group_interval": "10s",
}

# Everything the overlay may set on top of inventories/production. Anything
# else a converge needs must come from the production inventory itself: a
# variable missing there fails the run with its name (playbooks/_preflight.yml).
OVERLAY_KEYS = frozenset(
    {
        # Connection and addresses: the lab's key and host keys. The login is
        # production's (deploy, becoming root): the first converge logs in as root
        # by itself and closes root's login (finding 16, test_12_ssh_login.py).
        "ansible_ssh_private_key_file",
        "ansible_ssh_common_args",
        "ocpizza_admin_networks",
        "common_admin_users",
        "ocpizza_load_balancer_sources",
        # Certificates: the lab CA instead of Let's Encrypt.
        "nginx_tls_mode",
        "nginx_local_ca_cert",
        "nginx_local_ca_key",
        # The database's TLS (finding 8): its server certificate signed by the
        # lab CA, which the app verifies.
        "ocpizza_mysql_tls_ca_cert",
        "mysql_tls_ca_key",
        # Repositories: the forge instead of GitHub.
        "app_git_repo",
        "app_git_known_hosts",
        "mysql_schema_repo",
        "mysql_schema_known_hosts",
        # The site is reached on a port published on 127.0.0.1.
        "verify_url",
        "verify_resolve",
        "verify_cacert",
        "nginx_public_https_port",
        # The restaurants' starting data: the example app's (production's is real data).
        "app_resources_src",
        # Monitoring: no DNS (the site's name pinned to the load balancer), the lab CA,
        # and shorter delays for the live alert test. (The webhook is the receiver the
        # tests run on the control node: a vault value, as in production.)
        "monitoring_site_address",
        "monitoring_probe_ca_pem",
        *LAB_MONITORING_TIMINGS,
        # Containers see the whole machine's memory.
        "mysql_innodb_buffer_pool_max_mb",
        # The lab's own settings, read by the stand-ins' group_vars.
        "lab_dir",
        # Outbound (finding 17): the control node on the lab network's gateway stands
        # in for the apt mirror (its apt-cacher-ng), the alert webhook and Sentry.
        "firewall_egress_extra",
    }
)


def lab_env() -> dict[str, str]:
    """The environment that points playbooks/lab.yml at the platform lab."""
    env = os.environ.copy()
    env.update(
        OCPIZZA_LAB_PREFIX=PREFIX,
        OCPIZZA_LAB_SUBNET=SUBNET,
        OCPIZZA_LAB_HTTP_PORT=HTTP_PORT,
        OCPIZZA_LAB_HTTPS_PORT=HTTPS_PORT,
        OCPIZZA_LAB_DIR=str(LAB_DIR),
        OCPIZZA_LAB_INVENTORY=str(LAB_DIR / "lab-hosts.yml"),
        OCPIZZA_LAB_TOPOLOGY="ha",
        ANSIBLE_NOCOLOR="1",
        # A cache of its own: the operator's lab facts never leak in.
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(LAB_DIR / "facts"),
    )
    return env


def run_logged(
    cmd: list[str], log: str, env: dict[str, str], timeout: int = 2400
) -> subprocess.CompletedProcess[str]:
    """Run a command, its whole output written as it comes to .ansible/logs/<log>."""
    LOGS.mkdir(parents=True, exist_ok=True)
    path = LOGS / log
    with path.open("w") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        res = subprocess.run(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    text = path.read_text()
    return subprocess.CompletedProcess(cmd, res.returncode, text, "")


def recap(text: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of an ansible-playbook run: {host: {ok, changed, failed, ...}}."""
    hosts: dict[str, dict[str, int]] = {}
    for line in text.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(ok=.*)$", line.strip())
        if m:
            hosts[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return hosts


def output(res: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr on one line, whitespace collapsed (for substring asserts)."""
    return " ".join((res.stdout + res.stderr).split())


def _secret(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class Platform:
    """The converged HA lab, as the tests reach it."""

    inventory: Path
    lab_inventory: dict
    groups: dict[str, list[str]] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    https_port: str = HTTPS_PORT
    webhook_port: int = int(WEBHOOK_PORT)
    http_port: str = HTTP_PORT
    lab_dir: Path = LAB_DIR
    prefix: str = PREFIX

    @property
    def ca(self) -> Path:
        return self.lab_dir / "ca.crt"

    @property
    def gateway(self) -> str:
        """The lab network's gateway: the control node's address as the lab hosts reach it."""
        return SUBNET.rsplit(".", 1)[0] + ".1"

    @property
    def site(self) -> str:
        return f"https://www.ocpizza.com:{self.https_port}"

    def ip(self, host: str) -> str:
        """Private address of an inventory host (or of a lab container name)."""
        return self.addresses[host]

    def env(self) -> dict[str, str]:
        return lab_env()

    def playbook(
        self, name: str, *extra: str, timeout: int = 1800, log: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """ansible-playbook -i <overlay inventory> playbooks/<name> [extra...]."""
        cmd = [
            "ansible-playbook",
            "-i",
            str(self.inventory),
            str(ROOT / "playbooks" / name),
            *extra,
        ]
        if log:
            return run_logged(cmd, log, self.env(), timeout)
        return subprocess.run(
            cmd,
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def curl(self, path: str, *extra: str, port: str | None = None) -> tuple[str, str]:
        """GET through the load balancer's published port, certificate checked against the lab CA."""
        port = port or self.https_port
        res = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "15",
                "--cacert",
                str(self.ca),
                "--resolve",
                f"www.ocpizza.com:{port}:127.0.0.1",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                *extra,
                f"https://www.ocpizza.com:{port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        body, _, code = res.stdout.rpartition("\n")
        return code or "000", body

    def host(self, name: str) -> testinfra.host.Host:
        """testinfra host of an inventory host, over podman exec (fast)."""
        return testinfra.get_host(f"podman://{self.containers.get(name, name)}")

    def container(self, name: str) -> str:
        return self.containers[name]

    def vault(self) -> dict[str, str]:
        """The vault the lab is converged with (the inventory's group_vars/all/vault.yml)."""
        return yaml.safe_load((self.inventory / "group_vars" / "all" / "vault.yml").read_text())

    def edit_vault(self, values: dict[str, str]) -> None:
        """What an operator does before a rotation: new values in the vault. Written to the
        inventory's vault and to the stored one (a later run with REUSE keeps them)."""
        vault = {**self.vault(), **values}
        stored = self.lab_dir / "secrets" / "platform-vault.yml"
        stored.write_text(yaml.safe_dump(vault, sort_keys=False, width=10000))
        stored.chmod(0o600)
        path = self.inventory / "group_vars" / "all" / "vault.yml"
        path.write_text(
            "# Generated by tests/platform/conftest.py, then edited by a test (edit_vault).\n"
            + yaml.safe_dump(vault, sort_keys=False, width=10000)
        )
        path.chmod(0o600)

    def served(self, group: str, log: str, marker: str) -> dict[str, int]:
        """How many lines of ``log`` hold ``marker``, on each host of ``group``."""
        counts = {}
        for host in self.groups[group]:
            res = self.host(host).run(f"grep -c -- '{marker}' {log} || true")
            counts[host] = int(res.stdout.strip() or 0)
        return counts


def _lab_groups(lab_inventory: dict) -> dict[str, list[tuple[str, str]]]:
    """{group: [(container name, address)]} of the lab inventory playbooks/lab.yml wrote."""
    out: dict[str, list[tuple[str, str]]] = {}
    for group, body in (lab_inventory["all"].get("children") or {}).items():
        hosts = (body or {}).get("hosts") or {}
        out[group] = [(name, str(v["ansible_host"])) for name, v in hosts.items()]
    return out


def build_overlay(lab_inventory: dict, target: Path) -> Platform:
    """Write inventories/production as shipped, plus the lab overlay, under ``target``."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(PRODUCTION, target, ignore=shutil.ignore_patterns("vault.yml"))
    lab = _lab_groups(lab_inventory)
    production = yaml.safe_load((PRODUCTION / "hosts.yml").read_text())
    conn = lab_inventory["all"]["vars"]
    platform = Platform(inventory=target, lab_inventory=lab_inventory)

    children: dict[str, dict] = {}
    for group in MAPPED_GROUPS:
        prod_hosts = list((production["all"]["children"].get(group) or {}).get("hosts") or {})
        lab_hosts = lab.get(group, [])
        assert prod_hosts, f"inventories/production/hosts.yml has no host in group {group}"
        assert len(lab_hosts) >= len(prod_hosts), (
            f"the HA lab has {len(lab_hosts)} host(s) in {group}, production {len(prod_hosts)}"
        )
        children[group] = {"hosts": {}}
        for name, (container, ip) in zip(prod_hosts, lab_hosts, strict=False):
            children[group]["hosts"][name] = {"ansible_host": ip, "ocpizza_private_ip": ip}
            platform.containers[name] = container
            platform.addresses[name] = ip
        platform.groups[group] = prod_hosts
    for group in STAND_IN_GROUPS:
        children[group] = {"hosts": {}}
        for container, ip in lab.get(group, []):
            children[group]["hosts"][container] = {"ansible_host": ip, "ocpizza_private_ip": ip}
            platform.containers[container] = container
            platform.addresses[container] = ip
        platform.groups[group] = [c for c, _ in lab.get(group, [])]
    hosts = {"all": {"children": children}}
    (target / "hosts.yml").write_text(
        "# Generated by tests/platform/conftest.py: inventories/production's hosts\n"
        "# at the HA lab's addresses, plus the lab's stand-ins.\n"
        + yaml.safe_dump(hosts, sort_keys=False)
    )

    # The stand-ins' own settings (the forge's repositories) come from the lab inventory.
    shutil.copytree(
        ROOT / "inventories" / "lab" / "group_vars" / "forge", target / "group_vars" / "forge"
    )

    pub = (LAB_DIR / "id_ed25519.pub").read_text().strip()
    lb = [ip for _, ip in lab.get("loadbalancers", [])]
    net = SUBNET.rsplit(".", 1)[0]
    # The forge's host keys, pinned like GitHub's are in production (static values:
    # the preflight checks them before any play runs).
    forge_name, forge_ip = lab["forge"][0]
    keys = [
        line.split(None, 1)[1]
        for line in (LAB_DIR / "known_hosts").read_text().splitlines()
        if line.strip() and line.split(None, 1)[0] == forge_ip
    ]
    assert keys, f"no host key of the forge ({forge_ip}) in {LAB_DIR / 'known_hosts'}"
    forge_known_hosts = [f"{forge_name},{forge_ip} {key}" for key in keys]
    overlay = {
        "ansible_ssh_private_key_file": conn["ansible_ssh_private_key_file"],
        "ansible_ssh_common_args": conn["ansible_ssh_common_args"],
        "ocpizza_admin_networks": [f"{net}.0/24"],
        "common_admin_users": [{"name": "deploy", "ssh_keys": [pub]}],
        "ocpizza_load_balancer_sources": lb,
        "nginx_tls_mode": "local_ca",
        "nginx_local_ca_cert": str(LAB_DIR / "ca.crt"),
        "nginx_local_ca_key": str(LAB_DIR / "ca.key"),
        "ocpizza_mysql_tls_ca_cert": str(LAB_DIR / "ca.crt"),
        "mysql_tls_ca_key": str(LAB_DIR / "ca.key"),
        "lab_dir": str(LAB_DIR),
        "app_git_repo": f"git@{forge_name}:ocpizza.git",
        "app_git_known_hosts": forge_known_hosts,
        "mysql_schema_repo": f"git@{forge_name}:database.git",
        "mysql_schema_known_hosts": forge_known_hosts,
        "verify_url": f"https://www.ocpizza.com:{HTTPS_PORT}",
        "verify_resolve": f"www.ocpizza.com:{HTTPS_PORT}:127.0.0.1",
        "verify_cacert": str(LAB_DIR / "ca.crt"),
        "nginx_public_https_port": int(HTTPS_PORT),
        "mysql_innodb_buffer_pool_max_mb": 512,
        "app_resources_src": str(ROOT / "examples" / "ocpizza" / "resources"),
        "monitoring_site_address": lb[0] if lb else "",
        "monitoring_probe_ca_pem": (LAB_DIR / "ca.crt").read_text(),
        **LAB_MONITORING_TIMINGS,
        "firewall_egress_extra": [
            {"name": "lab apt cache", "port": 3142, "destinations": [f"{net}.1"]},
            {"name": "lab alert webhook", "port": int(WEBHOOK_PORT), "destinations": [f"{net}.1"]},
            {"name": "lab sentry stub", "port": int(SENTRY_PORT), "destinations": [f"{net}.1"]},
        ],
    }
    assert set(overlay) <= OVERLAY_KEYS, set(overlay) - OVERLAY_KEYS
    (target / "group_vars" / "all" / "zz-lab-overlay.yml").write_text(
        "# Generated by tests/platform/conftest.py: only what cannot exist in the lab.\n"
        + yaml.safe_dump(overlay, sort_keys=False, width=200)
    )
    vault = generated_vault()
    # Alertmanager posts to the receiver the tests run on the lab network's gateway.
    vault["vault_alertmanager_webhook_url"] = f"http://{net}.1:{WEBHOOK_PORT}/alerts"
    (target / "group_vars" / "all" / "vault.yml").write_text(
        "# Generated by tests/platform/conftest.py: a value for every vault_* of vault.example.yml.\n"
        + yaml.safe_dump(vault, sort_keys=False, width=10000)
    )
    return platform


# Optional secrets of the platform's own services, empty in the example (the
# service is then off) but generated here, so the platform run tests the service.
GENERATED_OPTIONAL = frozenset({"vault_mysql_exporter_password"})


def generated_vault() -> dict[str, str]:
    """A value for every variable of inventories/production/vault.example.yml.

    Deploy keys are the lab's (the forge trusts them); optional integrations
    left empty in the example stay empty; every other secret is random.
    """
    example = yaml.safe_load((PRODUCTION / "vault.example.yml").read_text()) or {}
    stored = LAB_DIR / "secrets" / "platform-vault.yml"
    if stored.exists():
        known = yaml.safe_load(stored.read_text()) or {}
    else:
        known = {}
    vault: dict[str, str] = {}
    for key, value in example.items():
        if key in known:
            vault[key] = known[key]
        elif key == "vault_app_deploy_key":
            vault[key] = (LAB_DIR / "deploy_app_ed25519").read_text()
        elif key == "vault_mysql_schema_deploy_key":
            vault[key] = (LAB_DIR / "deploy_database_ed25519").read_text()
        elif value in ("", None) and key not in GENERATED_OPTIONAL:
            vault[key] = ""
        else:
            vault[key] = _secret(50 if "secret_key" in key else 24)
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(yaml.safe_dump(vault, sort_keys=False, width=10000))
    stored.chmod(0o600)
    return vault


def _lab_is_up() -> bool:
    inv = LAB_DIR / "lab-hosts.yml"
    if not inv.exists():
        return False
    res = subprocess.run(
        ["podman", "container", "exists", f"{PREFIX}-lb1"], capture_output=True, check=False
    )
    return res.returncode == 0


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    """The HA lab, converged once from inventories/production plus the overlay."""
    env = lab_env()
    reuse = REUSE and _lab_is_up() and (LAB_DIR / "converged").exists()
    if not reuse:
        LAB_DIR.mkdir(parents=True, exist_ok=True)
        (LAB_DIR / "converged").unlink(missing_ok=True)
        res = run_logged(["ansible-playbook", "playbooks/lab.yml"], "platform-lab.log", env)
        assert res.returncode == 0, "lab.yml failed:\n" + res.stdout[-4000:]
    lab_inventory = yaml.safe_load((LAB_DIR / "lab-hosts.yml").read_text())
    plat = build_overlay(lab_inventory, LAB_DIR / "production")
    if not reuse:
        res = plat.playbook("site.yml", log="platform-converge.log", timeout=2400)
        assert res.returncode == 0, "site.yml (first converge) failed:\n" + res.stdout[-6000:]
        (LAB_DIR / "converged").write_text("ok\n")
    try:
        yield plat
    finally:
        if not KEEP:
            run_logged(
                ["ansible-playbook", "playbooks/lab-destroy.yml"], "platform-destroy.log", env
            )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the load check's summary of every operation run under load (tests/platform/loadclient.py)."""
    import loadclient  # the platform tests' helper, imported only when the run ends

    for test_id, summary in loadclient.RECORDED:
        terminalreporter.write_line(f"load: {test_id}: {summary}")
