"""The inventories that deploy: inventories/production and inventories/staging.

Static checks (every variable of roles/preflight/vars/main.yml's list is set by both
inventories, the vault template holds exactly the vault_* variables the roles
read, staging verifies its own site, CI passes every secret staging reads),
real runs of the preflight on copies of the production inventory (one
variable removed: the failure names it), and the Makefile's runbook targets
(control-node toolchain only, the vault password file passed on).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "inventories" / "production"
STAGING = REPO / "inventories" / "staging"
PREFLIGHT = REPO / "playbooks" / "_preflight.yml"
PREFLIGHT_VARS = REPO / "roles" / "preflight" / "vars" / "main.yml"
WORKFLOW = REPO / ".github" / "workflows" / "staging.yml"
VAULT_NAME = re.compile(r"\bvault_[a-z0-9_]*[a-z0-9]\b")
ENV_LOOKUP = re.compile(r"lookup\('ansible\.builtin\.env', '([A-Z][A-Z0-9_]*)'\)")
RUNBOOK_TARGETS = (
    "site verify deploy update-system update-app start stop restart status "
    "rollback backup backups restore rotate-secrets provision deprovision"
).split()
# Hosts the DigitalOcean inventory plugin fills in (staging has no hosts file).
PLUGIN_HOST_VARS = {"ansible_host", "ocpizza_private_ip"}


def load(path: Path) -> Any:
    """One YAML file."""
    return yaml.safe_load(path.read_text())


def preflight_vars() -> dict[str, Any]:
    """The preflight role's vars: its list and its placeholder pattern."""
    return load(PREFLIGHT_VARS)


def required() -> list[dict[str, Any]]:
    """THE list of what a deployment must set (the preflight's vars)."""
    return preflight_vars()["preflight_required"]


def placeholder() -> re.Pattern[str]:
    """The preflight's placeholder pattern, as Python compiles it."""
    return re.compile(preflight_vars()["preflight_placeholder"].strip())


def group_vars(inventory: Path) -> dict[str, Any]:
    """Every variable of the inventory's group_vars/all/*.yml (later files win)."""
    merged: dict[str, Any] = {}
    for path in sorted((inventory / "group_vars" / "all").glob("*.yml")):
        merged.update(load(path) or {})
    return merged


def production_hosts() -> dict[str, dict[str, dict[str, Any]]]:
    """{group: {host: host vars}} of inventories/production/hosts.yml."""
    children = load(PRODUCTION / "hosts.yml")["all"]["children"]
    return {group: body["hosts"] for group, body in children.items()}


def secrets_of(inventory: Path) -> dict[str, Any]:
    """The vault_* variables an inventory provides (template or environment mapping)."""
    if inventory == PRODUCTION:
        return load(PRODUCTION / "vault.example.yml")
    return load(STAGING / "group_vars" / "all" / "secrets.yml")


def vault_names_read() -> set[str]:
    """Every vault_* variable the roles, playbooks and project group_vars read."""
    files = [
        *REPO.glob("roles/*/defaults/**/*.yml"),
        *REPO.glob("roles/*/vars/**/*.yml"),
        *REPO.glob("roles/*/tasks/**/*.yml"),
        *REPO.glob("roles/*/templates/**/*"),
        *REPO.glob("playbooks/*.yml"),
        *REPO.glob("group_vars/**/*.yml"),
    ]
    names: set[str] = set()
    for path in files:
        if path.is_file() and path not in (PREFLIGHT, PREFLIGHT_VARS):
            names |= set(VAULT_NAME.findall(path.read_text()))
    return names


# --- Static checks -----------------------------------------------------------


@pytest.mark.parametrize("inventory", [PRODUCTION, STAGING], ids=["production", "staging"])
def test_every_required_variable_is_set(inventory: Path) -> None:
    values = group_vars(inventory)
    secrets = secrets_of(inventory)
    missing = []
    for item in required():
        when = item.get("when") or {}
        if any(values.get(var) != wanted for var, wanted in when.items()):
            continue
        name = item["name"]
        if name in values or name in secrets:
            continue
        if inventory == PRODUCTION and all(
            name in hostvars for hosts in production_hosts().values() for hostvars in hosts.values()
        ):
            continue
        if inventory == STAGING and name in PLUGIN_HOST_VARS:
            continue
        missing.append(name)
    assert not missing, f"{inventory.name} does not set: {missing}"


@pytest.mark.parametrize("inventory", [PRODUCTION, STAGING], ids=["production", "staging"])
def test_a_placeholder_is_always_a_checked_variable(inventory: Path) -> None:
    """Whatever still holds an example value is in the preflight's list, so no run deploys it."""
    checked = {item["name"] for item in required()}
    pattern = placeholder()
    values = {**group_vars(inventory), **secrets_of(inventory)}
    unchecked = [
        name
        for name, value in values.items()
        if pattern.search(yaml.safe_dump(value)) and name not in checked
    ]
    assert not unchecked


def test_production_is_the_production_shape() -> None:
    hosts = production_hosts()
    assert {group: sorted(h) for group, h in hosts.items()} == {
        "dbservers": ["db1.ocpizza.com"],
        "appservers": ["app1.ocpizza.com", "app2.ocpizza.com"],
        "webservers": ["web1.ocpizza.com", "web2.ocpizza.com"],
        "monitoring": ["mon1.ocpizza.com"],
    }
    values = group_vars(PRODUCTION)
    vpc = ipaddress.ip_network(values["ocpizza_do_vpc_ip_range"])
    documentation = ipaddress.ip_network("203.0.113.0/24")
    for group in hosts.values():
        for name, hostvars in group.items():
            assert ipaddress.ip_address(hostvars["ansible_host"]) in documentation, name
            assert ipaddress.ip_address(hostvars["ocpizza_private_ip"]) in vpc, name
    # The DigitalOcean Load Balancer connects from the VPC; it is no host here.
    assert values["ocpizza_load_balancer_sources"] == ["{{ ocpizza_do_vpc_ip_range }}"]
    assert values["ocpizza_environment"] == "production"
    assert values["nginx_tls_mode"] == "letsencrypt"


@pytest.mark.parametrize(
    ("health_check", "out", "back"),
    [
        (None, 35, 35),  # the shipped check: 10 s x 3 + 5 s
        (
            {
                "check_interval_seconds": 5,
                "unhealthy_threshold": 2,
                "healthy_threshold": 4,
                "response_timeout_seconds": 3,
            },
            13,
            23,
        ),
    ],
)
def test_drain_waits_what_the_load_balancers_health_check_takes(
    health_check: dict[str, int] | None, out: int, back: int
) -> None:
    """A web server taken out of DigitalOcean's rotation is waited for as long as the
    load balancer's own check needs to notice (its interval x threshold + a timeout)."""
    argv = ["ansible", "-i", str(PRODUCTION), "webservers[0]", "-m", "ansible.builtin.debug"]
    argv += [
        "-a",
        "msg={{ nginx_drain_lb_out_seconds | int }}/{{ nginx_drain_lb_in_seconds | int }}",
    ]
    if health_check:
        argv += ["-e", json.dumps({"ocpizza_do_load_balancer": {"health_check": health_check}})]
    run = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"msg: {out}/{back}" in run.stdout, run.stdout


def test_vault_example_holds_exactly_the_vault_variables_read() -> None:
    read = vault_names_read()
    example = set(load(PRODUCTION / "vault.example.yml"))
    assert example == read, (
        f"read but not in the template: {sorted(read - example)}; "
        f"in the template but read nowhere: {sorted(example - read)}"
    )
    preflight = {i["name"] for i in required() if i["name"].startswith("vault_")}
    assert preflight <= read


def test_staging_reads_the_same_secrets_from_the_ci_environment() -> None:
    secrets = secrets_of(STAGING)
    assert set(secrets) == set(load(PRODUCTION / "vault.example.yml"))
    workflow = load(WORKFLOW)
    (job,) = workflow["jobs"].values()
    # The environment of each step that runs a playbook on staging: the job's, and the
    # step's own (the DigitalOcean token is set there only, finding 7 of issue 15).
    playbook_envs = [
        {**job["env"], **step.get("env", {})}
        for step in job["steps"]
        if "ansible-playbook -i inventories/staging" in step.get("run", "")
    ]
    assert playbook_envs
    for name, value in secrets.items():
        found = ENV_LOOKUP.fullmatch(value.removeprefix("{{ ").removesuffix(" }}"))
        assert found, f"{name} must be one environment lookup, got {value!r}"
        env = found.group(1)
        for playbook_env in playbook_envs:
            assert playbook_env.get(env) == f"${{{{ secrets.{env} }}}}", (
                f"the staging workflow must set {env} (for {name}) from its secret store"
            )


def test_staging_verifies_its_own_site() -> None:
    staging = group_vars(STAGING)
    production = group_vars(PRODUCTION)
    assert staging["verify_url"] == f"https://{staging['nginx_server_names'][0]}"
    assert staging["nginx_server_names"][0] not in production["nginx_server_names"]
    assert staging["verify_url"] != production["verify_url"]
    assert production["verify_url"] == f"https://{production['nginx_server_names'][0]}"


# --- The preflight, run --------------------------------------------------------


def playbook_env(tmp_path: Path) -> dict[str, str]:
    """ansible-playbook's environment: the project's config, a fact cache of the test's own."""
    env = os.environ.copy()
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def run_preflights(
    runs: list[tuple[Path, tuple[str, ...]]], tmp_path: Path
) -> list[tuple[int, str]]:
    """ansible-playbook playbooks/_preflight.yml -i <inventory> <extra>, the runs side by side.

    Each result is (rc, output on one line).
    """
    procs = [
        subprocess.Popen(
            ["ansible-playbook", "-i", str(inventory), str(PREFLIGHT), *extra],
            cwd=REPO,
            env=playbook_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for inventory, extra in runs
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        results.append((proc.returncode, " ".join(out.split())))
    return results


def run_preflight(inventory: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    """One preflight run: (rc, output on one line)."""
    return run_preflights([(inventory, extra)], tmp_path)[0]


def filled_production(target: Path, drop: str | None = None) -> Path:
    """A copy of inventories/production as an operator fills it, without ``drop``.

    Hosts are local (nothing is reached); the values replace the placeholders;
    the vault is generated. No private key material: the preflight only
    checks that a value is there.
    """
    shutil.copytree(PRODUCTION, target)
    hosts = load(target / "hosts.yml")
    for group in hosts["all"]["children"].values():
        for hostvars in group["hosts"].values():
            hostvars["ansible_host"] = "127.0.0.1"
            hostvars["ansible_connection"] = "local"
    (target / "hosts.yml").write_text(yaml.safe_dump(hosts))
    # The restaurants' starting data, as an operator drops it into resources/.
    (target / "resources" / "restaurants.xlsx").write_bytes(b"PK\x03\x04")
    # The database's CA (README, "TLS between the app servers and MySQL"): the
    # preflight checks that the files exist, not what they hold.
    (target / "files").mkdir()
    (target / "files" / "mysql-ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (target / "files" / "mysql-ca.key").write_text("$ANSIBLE_VAULT;1.1;AES256\n")
    filled = {
        "ocpizza_admin_networks": ["10.8.0.0/24"],
        "common_admin_users": [
            {"name": "deploy", "ssh_keys": ["ssh-ed25519 AAAAC3Nz ops@ocpizza"]}
        ],
        "nginx_letsencrypt_email": "ops@ocpizza.com",
    }
    (target / "group_vars" / "all" / "zz-filled.yml").write_text(yaml.safe_dump(filled))
    vault = {
        name: (f"generated-{name}" if value else "")
        for name, value in load(PRODUCTION / "vault.example.yml").items()
    }
    # A URL, as the preflight checks its shape.
    vault["vault_alertmanager_webhook_url"] = "https://chat.ocpizza.com/hooks/generated-token"
    (target / "group_vars" / "all" / "vault.yml").write_text(yaml.safe_dump(vault))
    if drop:
        for path in (target / "group_vars" / "all").glob("*.yml"):
            data = load(path) or {}
            if drop in data:
                del data[drop]
                path.write_text(yaml.safe_dump(data))
    return target


@pytest.fixture
def shipped(tmp_path: Path) -> Iterator[Path]:
    """inventories/production as shipped (a copy: the run writes nothing there)."""
    target = tmp_path / "production"
    shutil.copytree(PRODUCTION, target)
    yield target


def test_preflight_stops_the_shipped_example_naming_each_placeholder(
    shipped: Path, tmp_path: Path
) -> None:
    plain, tagged, lab = run_preflights(
        [
            (shipped, ()),
            # update.yml --tags system, in a dry run: the preflight still runs.
            (shipped, ("--tags", "system", "--check")),
            # The lab is exempt: its values are generated.
            (shipped, ("-e", "ocpizza_environment=lab")),
        ],
        tmp_path,
    )
    for rc, out in (plain, tagged):
        assert rc != 0
        assert "Nothing was changed" in out
        for name in (
            "ansible_host is still a placeholder",
            "ocpizza_admin_networks is still a placeholder",
            "common_admin_users is still a placeholder",
            "nginx_letsencrypt_email is still a placeholder",
            "vault_mysql_app_password is missing",
            "vault_app_deploy_key is missing",
            "vault_alertmanager_webhook_url is missing",
            # TLS to the database is required, and its CA not made yet.
            "ocpizza_mysql_tls_ca_cert is not a file of the control node on",
            "mysql_tls_ca_key is not a file of the control node on db1.ocpizza.com:",
        ):
            assert name in out, name
    rc, out = lab
    assert rc == 0, out


def test_preflight_passes_a_filled_inventory_and_names_a_removed_variable(tmp_path: Path) -> None:
    drops = ("app_git_repo", "mysql_schema_known_hosts", "vault_mysql_schema_deploy_key")
    (rc, out), *without = run_preflights(
        [(filled_production(tmp_path / "filled"), ())]
        + [
            (filled_production(tmp_path / f"without-{drop}", drop=drop), ("--check",))
            for drop in drops
        ],
        tmp_path,
    )
    assert rc == 0, out
    assert "ok=3" in out  # the role's arguments, the variables, then the starting data
    for drop, (rc, out) in zip(drops, without, strict=True):
        assert rc != 0, f"the preflight passed without {drop}"
        assert f"- {drop} is missing on" in out, out[-2000:]


def test_preflight_requires_the_database_ca_files(tmp_path: Path) -> None:
    inventory = filled_production(tmp_path / "no-ca-key")
    (inventory / "files" / "mysql-ca.key").unlink()
    emptied = filled_production(tmp_path / "no-tls")
    (emptied / "group_vars" / "all" / "zz-zz-no-tls.yml").write_text(
        yaml.safe_dump({"ocpizza_mysql_tls_ca_cert": ""})
    )
    (rc, out), (rc_empty, out_empty) = run_preflights([(inventory, ()), (emptied, ())], tmp_path)
    assert rc != 0
    assert "- mysql_tls_ca_key is not a file of the control node on db1.ocpizza.com:" in out
    assert "ocpizza_mysql_tls_ca_cert" not in out  # its file is there
    # Turning TLS off is refused outside the lab, naming the hosts that need it.
    assert rc_empty != 0
    assert (
        "- ocpizza_mysql_tls_ca_cert is empty on app1.ocpizza.com, app2.ocpizza.com, db1.ocpizza.com"
        in out_empty
    ), out_empty[-2000:]


def test_preflight_names_an_empty_value_and_the_hosts_it_concerns(tmp_path: Path) -> None:
    inventory = filled_production(tmp_path / "empty")
    (inventory / "group_vars" / "all" / "zz-zz-empty.yml").write_text(
        yaml.safe_dump({"app_git_known_hosts": [], "nginx_tls_mode": "provided"})
    )
    rc, out = run_preflight(inventory, tmp_path)
    assert rc != 0
    assert "- app_git_known_hosts is empty on app1.ocpizza.com, app2.ocpizza.com" in out
    # provided certificates are then required; the Let's Encrypt e-mail no longer is.
    assert "- vault_nginx_tls_certificate is empty on web1.ocpizza.com, web2.ocpizza.com" in out
    assert "nginx_letsencrypt_email" not in out


# --- The runbook targets ---------------------------------------------------------


def make(*args: str) -> subprocess.CompletedProcess[str]:
    """make <args> at the repository's root."""
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("target", RUNBOOK_TARGETS)
def test_runbook_targets_need_the_toolchain_only(target: str) -> None:
    res = make("-n", target, "INVENTORY=inventories/production")
    assert res.returncode == 0, res.stderr
    assert "scripts/toolchain.sh" in res.stdout
    for forbidden in ("setup.sh", "podman", "lab.yml", "sudo", "apt-get"):
        assert forbidden not in res.stdout, f"make {target} runs {forbidden}"
    assert "-i inventories/production" in res.stdout


def test_toolchain_script_needs_no_root_podman_or_apt() -> None:
    text = (REPO / "scripts" / "toolchain.sh").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for forbidden in ("apt-get", "podman", "sudo", "EUID", "lab/images", "dpkg"):
        assert forbidden not in code, forbidden


def test_the_vault_password_file_and_extra_arguments_reach_ansible_playbook(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "fake-ansible-playbook"
    fake.write_text('#!/bin/sh\necho "vault=$ANSIBLE_VAULT_PASSWORD_FILE args=$*"\n')
    fake.chmod(0o755)
    res = make(
        "deploy",
        "INVENTORY=inventories/production",
        f"PLAYBOOK={fake}",
        "ANSIBLE_VAULT_PASSWORD_FILE=/home/ops/.ocpizza-vault-pass",
        "ANSIBLE_ARGS=--check --diff",
    )
    assert res.returncode == 0, res.stderr
    assert (
        "vault=/home/ops/.ocpizza-vault-pass args=-i inventories/production --check --diff "
        "playbooks/deploy.yml"
    ) in res.stdout


def test_demo_passes_the_lab_shape_and_test_full_exists() -> None:
    res = make("-n", "demo", "LAB=ha")
    assert "LAB=ha bash scripts/demo.sh" in res.stdout
    res = make("-n", "test-full")
    assert "scripts/test-all.sh --full" in res.stdout


def test_preflight_reads_stagings_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging as CI runs it: hosts from the plugin (here a static stand-in), secrets from env."""
    target = tmp_path / "staging"
    shutil.copytree(STAGING / "group_vars", target / "group_vars")
    hosts = {
        group: {"hosts": {f"ocpizza-staging-{short}1": {"ansible_host": "127.0.0.1"}}}
        for group, short in (("dbservers", "db"), ("appservers", "app"), ("webservers", "web"))
    }
    (target / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": hosts}}))
    filled = {
        "ansible_connection": "local",
        "ocpizza_admin_networks": ["10.8.0.0/24"],
        "common_admin_users": [
            {"name": "deploy", "ssh_keys": ["ssh-ed25519 AAAAC3Nz ops@ocpizza"]}
        ],
        "nginx_letsencrypt_email": "ops@ocpizza.com",
    }
    (target / "group_vars" / "all" / "zz-filled.yml").write_text(yaml.safe_dump(filled))
    secrets = load(STAGING / "group_vars" / "all" / "secrets.yml")
    env_names = [ENV_LOOKUP.search(value).group(1) for value in secrets.values()]

    # The database's CA, which the workflow makes on the runner (or writes from its
    # secret store) and names in the environment.
    ca = {
        "OCPIZZA_MYSQL_TLS_CA_CERT_FILE": tmp_path / "ca.crt",
        "OCPIZZA_MYSQL_TLS_CA_KEY_FILE": tmp_path / "ca.key",
    }
    for name in [*env_names, *ca]:
        monkeypatch.delenv(name, raising=False)
    rc, out = run_preflight(target, tmp_path)
    assert rc != 0
    assert "- vault_mysql_app_password is empty on" in out
    assert "- ocpizza_mysql_tls_ca_cert is empty on" in out
    assert "- mysql_tls_ca_key is empty on ocpizza-staging-db1" in out
    assert "(staging)" in out

    for name in env_names:
        monkeypatch.setenv(name, f"ci-{name}")
    for name, path in ca.items():
        path.write_text("PEM\n")
        monkeypatch.setenv(name, str(path))
    rc, out = run_preflight(target, tmp_path)
    assert rc == 0, out


def test_preflight_names_an_empty_starting_data_directory(tmp_path: Path) -> None:
    inventory = filled_production(tmp_path / "production")
    (inventory / "resources" / "restaurants.xlsx").unlink()
    rc, text = run_preflight(inventory, tmp_path)
    assert rc != 0
    assert "app_resources_src" in text and "holds no .xlsx file" in text
