"""Issue 15, finding 7: the staging workflow trusts no host key, scopes its token, pins its actions.

(a) No step trusts a host key on first sight: the droplets' ed25519 host key is
    made (or read from the secret store) before they exist, without printing it,
    and provision.yml gives it to them in cloud-init user_data and pins its public
    half in known_hosts. The user data role digitalocean renders is checked here
    too: cloud-init deletes the image's keys, generates none, installs ours.
(b) The DigitalOcean token is in the environment of the steps that run a
    playbook on the staging inventory only: not the job's, not the steps that
    install third-party code.
(c) Every action is pinned by a full commit SHA, its tag in a comment. The SHAs
    are those of the tags as published (actions/checkout v4.2.2,
    actions/setup-python v5.6.0).
(d) Finding 8 in staging: the database's CA is made on the runner (or written
    from the secret store), never printed, named to the playbooks through the
    environment, and removed at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import FilterModule as CoreFilters

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "staging.yml"
ROLE = REPO / "roles" / "digitalocean"
# The commit each pinned tag names, as published by its repository.
PINNED = {
    "actions/checkout": ("11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
}
TOKEN = "DIGITALOCEAN_TOKEN"


@pytest.fixture(scope="module")
def text() -> str:
    return WORKFLOW.read_text()


@pytest.fixture(scope="module")
def job(text: str) -> dict[str, Any]:
    (only,) = yaml.safe_load(text)["jobs"].values()
    return only


def step(job: dict[str, Any], playbook: str) -> dict[str, Any]:
    (found,) = [s for s in job["steps"] if f"playbooks/{playbook}" in s.get("run", "")]
    return found


# --- (a) host keys ---------------------------------------------------------------------


def test_no_host_key_is_trusted_on_first_sight(text: str, job: dict[str, Any]):
    assert "HOST_KEY_CHECKING" not in text
    assert not re.search(r"(?i)StrictHostKeyChecking\s*=?\s*(no|off|accept-new)", text)
    assert "UserKnownHostsFile=/dev/null" not in text
    assert "ANSIBLE_HOST_KEY_CHECKING" not in (job.get("env") or {})
    assert "host_key_checking" not in (REPO / "ansible.cfg").read_text()


def test_the_host_key_is_made_before_the_droplets_and_never_printed(job: dict[str, Any]):
    steps = job["steps"]
    (keygen,) = [i for i, s in enumerate(steps) if "ssh-keygen -q -t ed25519" in s.get("run", "")]
    provision = steps.index(step(job, "provision.yml"))
    assert keygen < provision
    script = steps[keygen]["run"]
    assert steps[keygen]["env"] == {"STAGING_SSH_HOST_KEY": "${{ secrets.STAGING_SSH_HOST_KEY }}"}
    # Written to a private file, never to the log.
    assert re.search(r'install -m 600 /dev/null "\$HOST_KEY"', script)
    assert not re.search(r"\b(cat|echo)\b", script)
    assert "set -x" not in script
    run = " ".join(steps[provision]["run"].split())
    assert "-e digitalocean_host_key_file=" in run
    assert '-e digitalocean_known_hosts_file="$HOME/.ssh/known_hosts"' in run
    # And removed at the end, whatever happened.
    cleanup = steps[-1]
    assert cleanup["if"] == "${{ always() }}" and "staging-host-key" in cleanup["run"]


def render_user_data(private_key: str, public_key: str) -> dict[str, Any]:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined
    )
    env.filters.update({k: v for k, v in CoreFilters().filters().items() if k != "default"})
    text = env.get_template("user_data.yml.j2").render(
        ansible_managed="Ansible managed",
        digitalocean__host_key=private_key,
        digitalocean__host_key_public=public_key,
    )
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def test_the_user_data_installs_the_pinned_host_key_and_no_other(tmp_path: Path):
    key = tmp_path / "ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True
    )
    private, public = key.read_text(), (tmp_path / f"{key.name}.pub").read_text()
    data = render_user_data(private, public)
    assert data["ssh_deletekeys"] is True
    assert data["ssh_genkeytypes"] == []
    assert data["ssh_keys"] == {"ed25519_private": private, "ed25519_public": public.strip()}
    # The key cloud-init writes is the key whose public half the controller pins.
    written = tmp_path / "written"
    written.write_text(data["ssh_keys"]["ed25519_private"])
    written.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(written)], capture_output=True, text=True, check=True
    ).stdout.split()[:2]
    assert derived == public.split()[:2]


def test_provision_passes_the_user_data_and_pins_every_address():
    tasks = yaml.safe_load((ROLE / "tasks" / "provision.yml").read_text())
    (create,) = [t for t in tasks if "digitalocean_environment" in t]
    assert "user_data.yml.j2" in create["digitalocean_environment"]["user_data"]
    assert create["no_log"]  # the user data holds the private key
    (pin,) = [t for t in tasks if "ansible.builtin.known_hosts" in t]
    for address in ("name", "public_ipv4", "private_ipv4"):
        assert f"map(attribute='{address}')" in pin["loop"]
    names = [t["name"] for t in tasks]
    assert names.index(pin["name"]) < names.index(
        "Read the inventory again, so that the new droplets are in their groups"
    )


# --- the database's CA (finding 8 in staging) ------------------------------------------


def run_step(script: str, tmp: Path, **secrets: str) -> dict[str, str]:
    """Run a step's script as GitHub Actions does (bash -e -o pipefail), with an empty
    RUNNER_TEMP and GITHUB_ENV under ``tmp``; what it exported to later steps."""
    tmp.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "RUNNER_TEMP": str(tmp / "runner"),
        "GITHUB_ENV": str(tmp / "github.env"),
        **secrets,
    }
    (tmp / "runner").mkdir()
    res = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    # Nothing of the key reaches the job's log.
    assert res.stdout == "" and res.stderr == "", (res.stdout, res.stderr)
    return dict(line.split("=", 1) for line in (tmp / "github.env").read_text().splitlines())


def test_the_database_ca_is_made_on_the_runner_or_written_from_the_secret_store(
    job: dict[str, Any], tmp_path: Path
):
    steps = job["steps"]
    (made,) = [
        i
        for i, s in enumerate(steps)
        if "staging-mysql-ca" in s.get("run", "") and "openssl req" in s.get("run", "")
    ]
    assert made < steps.index(step(job, "provision.yml"))
    assert steps[made]["env"] == {
        "STAGING_MYSQL_CA_CERT": "${{ secrets.STAGING_MYSQL_CA_CERT }}",
        "STAGING_MYSQL_CA_KEY": "${{ secrets.STAGING_MYSQL_CA_KEY }}",
    }
    script = steps[made]["run"]
    # No secret kept: a CA made on the runner, named for the playbooks
    # (inventories/staging/group_vars/all/database.yml reads these two).
    exported = run_step(
        script, tmp_path / "made", STAGING_MYSQL_CA_CERT="", STAGING_MYSQL_CA_KEY=""
    )
    cert = Path(exported["OCPIZZA_MYSQL_TLS_CA_CERT_FILE"])
    key = Path(exported["OCPIZZA_MYSQL_TLS_CA_KEY_FILE"])
    assert key.stat().st_mode & 0o777 == 0o600
    text = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "CA:TRUE" in text and "Certificate Sign" in text
    assert (
        subprocess.run(
            ["openssl", "pkey", "-in", str(key), "-noout"], capture_output=True, check=False
        ).returncode
        == 0
    )
    # Kept in the secret store: written as it is, the key still private.
    kept = run_step(
        script,
        tmp_path / "kept",
        STAGING_MYSQL_CA_CERT=cert.read_text().strip(),
        STAGING_MYSQL_CA_KEY=key.read_text().strip(),
    )
    assert Path(kept["OCPIZZA_MYSQL_TLS_CA_CERT_FILE"]).read_text() == cert.read_text()
    assert Path(kept["OCPIZZA_MYSQL_TLS_CA_KEY_FILE"]).read_text() == key.read_text()
    assert Path(kept["OCPIZZA_MYSQL_TLS_CA_KEY_FILE"]).stat().st_mode & 0o777 == 0o600
    staging = yaml.safe_load((REPO / "inventories/staging/group_vars/all/database.yml").read_text())
    for name in exported:
        assert name in " ".join(staging.values()), name
    # And removed at the end, whatever happened.
    cleanup = steps[-1]
    assert cleanup["if"] == "${{ always() }}" and "staging-mysql-ca" in cleanup["run"]


# --- (b) the token ---------------------------------------------------------------------


def test_the_token_is_only_in_the_steps_that_run_a_staging_playbook(job: dict[str, Any]):
    assert TOKEN not in (job.get("env") or {})
    for s in job["steps"]:
        env = s.get("env") or {}
        runs_staging = "ansible-playbook -i inventories/staging" in s.get("run", "")
        if runs_staging:
            assert env.get(TOKEN) == "${{ secrets.DIGITALOCEAN_TOKEN }}", s["name"]
        else:
            assert TOKEN not in env, s["name"]
    for playbook in ("provision.yml", "site.yml", "verify.yml", "deprovision.yml"):
        assert TOKEN in step(job, playbook)["env"]


# --- (c) actions pinned by commit --------------------------------------------------------


def test_every_action_is_pinned_by_a_full_commit_sha_with_its_tag(text: str, job: dict[str, Any]):
    uses = [s["uses"] for s in job["steps"] if "uses" in s]
    assert uses
    for ref in uses:
        action, _, sha = ref.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", sha), ref
        assert (sha, PINNED[action][1]) == PINNED[action], ref
        # The tag in a comment on the same line, for the reader and for updates.
        assert re.search(rf"uses: {re.escape(ref)}\s+# {re.escape(PINNED[action][1])}$", text, re.M)
