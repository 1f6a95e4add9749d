"""The bad-input catalog (issue 15): invalid inputs across roles and playbooks, each
stopped BEFORE ANY CHANGE with a message that names the variable.

Every row is one real ``ansible-playbook`` run against a copy of the production
inventory, filled in as an operator fills it, whose hosts all point at a closed
port of this machine: nothing can be reached. A row passes when the run fails,
its output names the variable (and says what is wrong), and the PLAY RECAP shows
no change and no host reached (``unreachable=0``: the run stopped on the
control node, before its first connection). The control rows prove the harness
is not vacuous: with valid inputs, the same runs get past validation and fail
only on reaching a host.

Rows: the preflight every changing playbook imports (playbooks/_preflight.yml,
and site.yml / deploy.yml / rotate-secrets.yml themselves), each role's argument
spec and validate.yml (tests/catalog/role_inputs.yml, on the hosts of its tier),
and the request checks of restore.yml and rotate-secrets.yml. The runs go 4 at a
time (under 2 minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_inventories import filled_production

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "catalog" / "role_inputs.yml"
TIERS = {
    "app": "appservers",
    "gunicorn": "appservers",
    "mysql": "dbservers",
    "mysql_backup": "dbservers",
    "nginx": "webservers",
    "common": "all",
    "system_update": "all",
    "firewall": "all",
}


@dataclass(frozen=True)
class Row:
    """One invalid input: where it goes in, and what the refusal must say."""

    id: str
    variable: str
    extra: dict[str, Any]
    says: str
    playbook: str = "playbooks/_preflight.yml"
    role: str = ""
    args: tuple[str, ...] = field(default=())

    def argv(self, inventory: Path) -> list[str]:
        argv = ["ansible-playbook", "-i", str(inventory)]
        if self.role:
            argv += [str(HARNESS), "-e", f"catalog_role={self.role}"]
            argv += ["-e", f"catalog_hosts={TIERS[self.role]}"]
        else:
            argv.append(str(REPO / self.playbook))
        if self.extra:
            argv += ["-e", json.dumps(self.extra)]
        return argv + list(self.args)


def pre(id: str, variable: str, value: Any, says: str, **more: Any) -> Row:
    """A preflight row: the variable given as an extra var."""
    return Row(id, variable, {variable: value, **more}, says)


def role(name: str, id: str, variable: str, value: Any, says: str, **more: Any) -> Row:
    """A role row: the role's entry point through the harness, on its tier."""
    return Row(f"{name}-{id}", variable, {variable: value, **more}, says, role=name)


SHORT = "too-short-pw"  # 12 characters
SHA = "sha256:" + "a" * 64
# Valid off-site settings of role mysql_backup; each off-site row breaks one of them.
OFFSITE_OK = dict(
    mysql_backup_offsite_endpoint="https://ams3.digitaloceanspaces.com",
    mysql_backup_offsite_bucket="ocpizza-backups",
    mysql_backup_offsite_region="ams3",
    mysql_backup_offsite_age_recipients=["age1" + "q" * 58],
    vault_mysql_backup_offsite_access_key="DO00EXAMPLEACCESS",
    vault_mysql_backup_offsite_secret_key="example-secret-key-for-the-catalog",
)
ROWS: list[Row] = [
    # --- Secrets: missing, empty, placeholder, short (preflight) -------------------
    pre("secret-short", "vault_mysql_app_password", SHORT, "is shorter than 16 characters"),
    pre("secret-short-backup", "vault_mysql_backup_password", "b4ckup", "shorter than 16"),
    pre("migration-password-empty", "vault_mysql_migration_password", "", "is empty"),
    pre("secret-placeholder", "vault_django_admin_password", "CHANGE-ME", "still a placeholder"),
    pre(
        "secret-placeholder-key",
        "vault_django_secret_key",
        "CHANGE-ME-50-random-characters",
        "still a placeholder",
    ),
    pre("secret-empty", "vault_django_admin_password", "", "is empty"),
    pre("optional-secret-placeholder", "vault_paypal_client_secret", "CHANGE-ME", "placeholder"),
    pre("optional-secret-short", "vault_google_maps_api_key", "AIza-123", "shorter than 16"),
    pre("optional-dsn-placeholder", "vault_sentry_dsn", "REPLACE-with-the-dsn", "placeholder"),
    pre("deploy-key-placeholder", "vault_app_deploy_key", "CHANGE-ME", "still a placeholder"),
    # --- Refs, URLs, checksums (preflight: findings 18 and 4) ----------------------
    pre("ref-option", "app_git_version", "--upload-pack=touch /tmp/pwned", "is malformed"),
    pre("ref-dash", "app_git_version", "-b", "not starting with '-'"),
    pre("ref-dotdot", "app_git_version", "main..evil", "is malformed"),
    pre("ref-space", "app_git_version", "release 1", "is malformed"),
    pre("schema-ref-option", "mysql_schema_version", "--output=/etc/passwd", "is malformed"),
    pre(
        "schema-ref-in-the-lab",
        "mysql_schema_version",
        "-x",
        "is malformed",
        ocpizza_environment="lab",
    ),
    pre("zip-http", "app_zip_url", "http://code.ocpizza.com/site.zip", "an https:// URL"),
    pre("zip-ftp", "app_zip_url", "ftp://code.ocpizza.com/site.zip", "an https:// URL"),
    pre(
        "zip-md5",
        "app_zip_checksum",
        "md5:0123456789abcdef0123456789abcdef",
        "md5 and sha1 are refused",
        app_zip_url="https://code.ocpizza.com/site.zip",
    ),
    pre(
        "zip-no-checksum",
        "app_zip_checksum",
        "",
        "required with app_zip_url",
        app_zip_url="https://code.ocpizza.com/site.zip",
    ),
    pre(
        "zip-short-sha256",
        "app_zip_checksum",
        "sha256:abc",
        "64 hex digits",
        app_zip_url="https://code.ocpizza.com/site.zip",
    ),
    # --- Addresses, names, placeholders of the example inventory (preflight) -------
    pre("host-documentation-range", "ansible_host", "192.0.2.10", "still a placeholder"),
    pre("admin-networks-example", "ocpizza_admin_networks", ["203.0.113.0/24"], "placeholder"),
    pre("server-names-empty", "nginx_server_names", [], "is empty"),
    pre("verify-url-example", "verify_url", "https://www.example.com/", "still a placeholder"),
    pre("letsencrypt-email-example", "nginx_letsencrypt_email", "ops@example.com", "placeholder"),
    pre("known-hosts-empty", "app_git_known_hosts", [], "is empty"),
    pre("schema-repo-empty", "mysql_schema_repo", "", "is empty"),
    # --- The playbooks that change hosts stop at the same preflight ----------------
    Row(
        "site-short-secret",
        "vault_mysql_app_password",
        {"vault_mysql_app_password": SHORT},
        "shorter than 16",
        playbook="playbooks/site.yml",
    ),
    Row(
        "deploy-ref-option",
        "app_git_version",
        {"app_git_version": "--upload-pack=id"},
        "is malformed",
        playbook="playbooks/deploy.yml",
    ),
    Row(
        "rotate-placeholder",
        "vault_django_secret_key",
        {"vault_django_secret_key": "CHANGE-ME-50-random-characters", "secret": "secret_key"},
        "still a placeholder",
        playbook="playbooks/rotate-secrets.yml",
    ),
    # --- Request checks of the playbooks (localhost plays) -------------------------
    Row("restore-no-backup", "backup", {}, "Missing -e backup", playbook="playbooks/restore.yml"),
    Row(
        "restore-unknown-host",
        "restore_db_host",
        {"backup": "oc_pizza-20261129T013000Z", "restore_db_host": "db9.ocpizza.com"},
        "not in it",
        playbook="playbooks/restore.yml",
    ),
    Row(
        "restore-bad-id",
        "backup",
        {"backup": "oc_pizza 2026; rm -rf /"},
        "not a backup id",
        playbook="playbooks/restore.yml",
    ),
    Row(
        "restore-relative-path",
        "backup",
        {"backup": "../../etc/shadow"},
        "absolute path",
        playbook="playbooks/restore.yml",
    ),
    Row(
        "restore-dotdot-path",
        "backup",
        {"backup": "/var/backups/ocpizza/../../../etc/shadow"},
        "absolute path",
        playbook="playbooks/restore.yml",
    ),
    Row(
        "restore-until-malformed",
        "until",
        {"until": "2026-11-31T14:03:00"},
        "until must be a UTC time",
        playbook="playbooks/restore.yml",
    ),
    Row(
        "restore-until-unquoted",
        "until",
        {"until": "2026-11-29"},
        "quote it for Ansible",
        playbook="playbooks/restore.yml",
    ),
    Row(
        "restore-until-future",
        "until",
        {"until": "2999-01-01T00:00:00"},
        "not in the future",
        playbook="playbooks/restore.yml",
    ),
    Row(
        "restore-until-and-backup",
        "until",
        {"until": "2026-11-29T14:03:00", "backup": "oc_pizza-20261129T013000Z"},
        "more than one of backup, until, until_position",
        playbook="playbooks/restore.yml",
    ),
    Row(
        "restore-until-position",
        "until_position",
        {"until_position": "mysql-bin.000012"},
        "<binlog file>:<position>",
        playbook="playbooks/restore.yml",
    ),
    Row(
        "rotate-unknown-secret",
        "secret",
        {"secret": "root_password"},
        "secret must be one of",
        playbook="playbooks/rotate-secrets.yml",
    ),
    # --- Role app: argument spec and validate.yml ----------------------------------
    role("app", "unknown-source", "app_source", "svn", "app_source"),
    role("app", "secret-key-short", "app_secret_key", "x" * 20, "too short"),
    role("app", "user-name", "app_user", "Root User", "app_user"),
    role("app", "root-relative", "app_root", "opt/ocpizza", "app_root"),
    role("app", "csrf-origin", "app_csrf_trusted_origins", ["www.ocpizza.com"], "https://"),
    role("app", "metrics-path", "app_metrics_path", "metrics/", "app_metrics_path"),
    role("app", "keep-releases", "app_keep_releases", 1, "at least 2"),
    role("app", "known-hosts", "app_git_known_hosts", ["not a key line"], "malformed"),
    role("app", "env-extra", "app_env_extra", {"lower_case": "x"}, "upper case"),
    role("app", "zip-neither", "app_zip_url", "", "exactly one of", app_source="zip"),
    role(
        "app",
        "zip-plain-http",
        "app_zip_url",
        "http://code.ocpizza.com/site.zip",
        "an https:// URL",
        app_source="zip",
        app_zip_checksum=SHA,
    ),
    role(
        "app",
        "zip-no-checksum",
        "app_zip_checksum",
        "",
        "required with app_zip_url",
        app_source="zip",
        app_zip_url="https://code.ocpizza.com/site.zip",
    ),
    role(
        "app",
        "zip-sha1",
        "app_zip_checksum",
        "sha1:" + "0" * 40,
        "sha256:<64 hex digits>",
        app_source="zip",
        app_zip_url="https://code.ocpizza.com/site.zip",
    ),
    role("app", "port-type", "app_db_port", "mysql", "app_db_port"),
    # --- Role mysql -----------------------------------------------------------------
    role("mysql", "bind-address", "mysql_bind_address", "not an address!", "mysql_bind_address"),
    role("mysql", "password-empty", "mysql_app_password", "", "vault_mysql_app_password"),
    role("mysql", "port-type", "mysql_port", "three-three-oh-six", "mysql_port"),
    role("mysql", "size-type", "mysql_innodb_buffer_pool_max_mb", "lots", "max_mb"),
    role("mysql", "days-type", "mysql_binlog_expire_days", "a week", "mysql_binlog_expire_days"),
    role("mysql", "time-type", "mysql_long_query_time", "slow", "mysql_long_query_time"),
    # Finding 1: database.git is applied as the migration account, never root.
    role(
        "mysql",
        "migration-password-empty",
        "mysql_migration_password",
        "",
        "Set vault_mysql_migration_password",
    ),
    # Finding 8: TLS to the database needs the CA's certificate and key on the control node.
    role(
        "mysql", "tls-ca-missing", "mysql_tls_ca_cert", "/nonexistent/ca.crt", "mysql_tls_ca_cert"
    ),
    role(
        "app",
        "db-tls-ca-missing",
        "app_db_tls_ca_cert",
        "/nonexistent/ca.crt",
        "app_db_tls_ca_cert",
    ),
    # --- Role mysql_backup ----------------------------------------------------------
    role("mysql_backup", "compressor", "mysql_backup_compressor", "zip", "compressor"),
    role("mysql_backup", "keep-type", "mysql_backup_keep_daily", "a week", "keep_daily"),
    role(
        "mysql_backup",
        "binlog-calendar",
        "mysql_backup_binlog_on_calendar",
        "*:0/5\nOnCalendar=daily",
        "one line each",
    ),
    *[
        role(
            "mysql_backup",
            id,
            var,
            value,
            says,
            **{k: v for k, v in OFFSITE_OK.items() if k != var},
        )
        for id, var, value, says in (
            ("offsite-no-recipients", "mysql_backup_offsite_age_recipients", [], "is empty"),
            (
                "offsite-private-key",
                "mysql_backup_offsite_age_recipients",
                ["AGE-SECRET-KEY-1XYZ"],
                "not an age",
            ),
            (
                "offsite-no-secret-key",
                "vault_mysql_backup_offsite_secret_key",
                "",
                "is missing or empty",
            ),
            (
                "offsite-no-bucket",
                "mysql_backup_offsite_bucket",
                "",
                "mysql_backup_offsite_bucket a bucket name",
            ),
            (
                "offsite-endpoint-path",
                "mysql_backup_offsite_endpoint",
                "ams3.digitaloceanspaces.com",
                "an http(s) URL",
            ),
        )
    ],
    # --- Role common ----------------------------------------------------------------
    role("common", "root-login", "common_sshd_permit_root_login", "yes", "permit_root_login"),
    role("common", "ssh-port", "common_sshd_port", "ssh", "common_sshd_port"),
    # Finding 16: root's login is closed by default; a key for root contradicts it.
    role(
        "common",
        "root-key-closed",
        "common_root_ssh_keys",
        ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0pizzaroot root@provider"],
        "common_sshd_permit_root_login is \"no\"",
    ),
    # --- Role nginx -----------------------------------------------------------------
    role("nginx", "tls-mode", "nginx_tls_mode", "selfsigned", "nginx_tls_mode"),
    role("nginx", "https-port", "nginx_public_https_port", "https", "nginx_public_https_port"),
    role("nginx", "admin-open", "nginx_admin_allow_networks", [], "open to the Internet"),
    role("nginx", "login-rate", "nginx_admin_login_rate", "ten a minute", "an nginx rate"),
    role(
        "nginx",
        "health-detail",
        "nginx_health_detail_sources",
        ["monitoring box"],
        "nginx_health_detail_sources",
    ),
    # --- Role firewall (finding 6: each inventory names who may reach SSH) -------------
    role("firewall", "ssh-empty", "firewall_ssh_sources", [], "must list the addresses"),
    # --- Role firewall, outbound (finding 17: each entry says where it goes) -----------
    role(
        "firewall",
        "egress-port",
        "firewall_egress_extra",
        [{"name": "proxy", "port": 70000, "destinations": ["10.110.0.5"]}],
        "needs a port in 1-65535",
    ),
    role(
        "firewall",
        "egress-destination",
        "firewall_egress_extra",
        [{"name": "github", "port": 22, "destinations": ["github.com"]}],
        "bad destinations: ['github.com']",
    ),
    role(
        "firewall",
        "egress-group",
        "firewall_egress_extra",
        [{"name": "mysql", "port": 3306, "to_group": "databases"}],
        "unknown groups: ['databases']",
    ),
    role(
        "firewall",
        "egress-nowhere",
        "firewall_egress_extra",
        [{"name": "https", "port": 443}],
        "neither to_group nor destinations: ['https']",
    ),
    role(
        "firewall",
        "egress-not-a-list",
        "firewall_egress_extra",
        [{"name": "dns", "port": 53, "proto": "udp", "destinations": "10.110.0.2"}],
        "not a list: ['dns']",
    ),
    # --- Role gunicorn --------------------------------------------------------------
    role("gunicorn", "workers", "gunicorn_workers", "many", "gunicorn_workers"),
    role("gunicorn", "loglevel", "gunicorn_loglevel", "verbose", "gunicorn_loglevel"),
    # --- Role system_update ---------------------------------------------------------
    role("system_update", "mode", "system_update_mode", "dist-upgrade", "system_update_mode"),
    role("system_update", "checks", "system_update_checks", ["redis"], "system_update_checks"),
]
# Inputs that stop before any change today, but with a message that does not
# name the variable (a filter fails first): strict, so the row turns red once
# the role names it (then move it to ROWS).
KNOWN_GAPS: dict[str, str] = {}
# With valid inputs the same runs get past validation: the harness is not vacuous.
CONTROLS = sorted({r.role for r in ROWS if r.role})


def catalog_inventory(target: Path) -> Path:
    """The production inventory filled in, every host at a closed port of this machine."""
    inventory = filled_production(target)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    for group in hosts["all"]["children"].values():
        for hostvars in group["hosts"].values():
            hostvars.update(ansible_host="127.0.0.1", ansible_port=1, ansible_connection="ssh")
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    # A deploy key made now, beside the inventory (no private key is committed): the
    # roles only check its form.
    key = target.parent / "catalog_deploy_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "catalog", "-f", str(key)],
        check=True,
    )
    private_key = key.read_text()
    # What the roles' own validations want beyond the preflight's list.
    (inventory / "group_vars" / "all" / "zz-catalog.yml").write_text(
        yaml.safe_dump(
            {
                "vault_app_deploy_key": private_key,
                "vault_mysql_schema_deploy_key": private_key,
                "vault_django_secret_key": "k" * 60,
                "app_resources_src": str(inventory / "resources"),
                "ansible_ssh_common_args": "-o ConnectTimeout=3 -o ControlMaster=no",
            }
        )
    )
    return inventory


def run(argv: list[str], tmp: Path) -> tuple[int, str]:
    env = os.environ.copy()
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN="memory",
        ANSIBLE_LOCAL_TEMP=str(tmp / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    proc = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """Every row and control, run once, 4 at a time."""
    tmp = tmp_path_factory.mktemp("catalog")
    inventory = catalog_inventory(tmp / "inventory")
    jobs = {row.id: row.argv(inventory) for row in ROWS}
    for name in CONTROLS:
        jobs[f"control-{name}"] = Row(f"control-{name}", "", {}, "", role=name).argv(inventory)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(run, argv, tmp) for key, argv in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counters of each host."""
    hosts = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        found = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if found:
            hosts[found.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    return hosts


def test_the_catalog_holds_at_least_40_inputs_across_roles_and_playbooks():
    assert len([r for r in ROWS if r.id not in KNOWN_GAPS]) >= 40
    assert len({r.id for r in ROWS}) == len(ROWS)
    assert len({r.role for r in ROWS if r.role}) >= 6
    assert len({r.playbook for r in ROWS if not r.role}) >= 4


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(
            r,
            id=r.id,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[r.id])]
            if r.id in KNOWN_GAPS
            else [],
        )
        for r in ROWS
    ],
)
def test_a_bad_input_stops_before_any_change_naming_the_variable(row: Row, results):
    rc, output = results[row.id]
    text = " ".join(output.split())
    assert rc != 0, f"{row.id}: the run passed\n{text[-1500:]}"
    assert row.variable in text, (
        f"{row.id}: the message does not name {row.variable}\n{text[-1500:]}"
    )
    assert row.says in text, f"{row.id}: expected {row.says!r}\n{text[-1500:]}"
    counters = recap(output)
    assert counters, f"{row.id}: no PLAY RECAP\n{text[-1500:]}"
    for host, c in counters.items():
        assert c.get("changed", 0) == 0, f"{row.id}: {host} changed"
        assert c.get("unreachable", 0) == 0, f"{row.id}: {host} was reached for (validation passed)"


@pytest.mark.parametrize("name", CONTROLS)
def test_valid_inputs_get_past_validation_to_the_first_connection(name: str, results):
    rc, output = results[f"control-{name}"]
    counters = recap(output)
    assert rc != 0
    assert any(c.get("unreachable", 0) for c in counters.values()), output[-3000:]
    assert all(c.get("failed", 0) == 0 for c in counters.values()), output[-3000:]
    assert all(c.get("changed", 0) == 0 for c in counters.values())
