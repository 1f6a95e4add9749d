"""The runbook runs inside the execution environment, as AWX would run it.

With the image of ``make ee`` and ansible-navigator (.venv-ee), against a
small lab of its own converged with site.yml:

* ``verify.yml`` and ``status.yml`` pass inside the EE, and so does a probe
  that the repository's own plugins load there (vars plugin, filters) and that
  it really ran in the container (its Python, /run/.containerenv);
* the DigitalOcean inventory plugin lists a fake API's droplets from inside the
  EE, and ``provision.yml --check`` plans with the project's module and
  module_utils there;
* the wall time of verify.yml through navigator and run directly is written to
  .ansible/logs/ee-figures.txt.

About 16 minutes on 2 busy cores (the lab's converge is most of it): it needs root,
podman, the lab images and the EE image, so it runs only with OCPIZZA_EE=1
(scripts/ee-test.sh, in make test-full). Environment: OCPIZZA_EE_IMAGE,
OCPIZZA_EE_PREFIX / _SUBNET / _HTTP_PORT / _HTTPS_PORT (defaults ocpizza-ee,
10.89.71.0/24, 28171, 28571), OCPIZZA_EE_KEEP=1 keeps the lab,
OCPIZZA_EE_REUSE=1 reuses a kept, converged one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_digitalocean import DEFAULT_TOKEN, FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import write_extra_vars

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("OCPIZZA_EE_IMAGE", "localhost/ocpizza-ee:latest")
PREFIX = os.environ.get("OCPIZZA_EE_PREFIX", "ocpizza-ee")
SUBNET = os.environ.get("OCPIZZA_EE_SUBNET", "10.89.71.0/24")
HTTP_PORT = os.environ.get("OCPIZZA_EE_HTTP_PORT", "28171")
HTTPS_PORT = os.environ.get("OCPIZZA_EE_HTTPS_PORT", "28571")
# Under the project directory: navigator mounts it, so the lab's key, known
# hosts, inventory and fact cache have the same paths inside the EE.
LAB_DIR = ROOT / ".ansible" / "ee-lab"
INVENTORY = LAB_DIR / "inventory"
LOGS = ROOT / ".ansible" / "logs"
NAVIGATOR = ROOT / ".venv-ee" / "bin" / "ansible-navigator"
KEEP = os.environ.get("OCPIZZA_EE_KEEP") == "1"
REUSE = os.environ.get("OCPIZZA_EE_REUSE") == "1"

pytestmark = [
    pytest.mark.full,
    pytest.mark.skipif(
        os.environ.get("OCPIZZA_EE") != "1",
        reason="builds a lab and runs the EE image (root, podman, ~16 min): "
        "scripts/ee-test.sh (make test-full)",
    ),
]


def env(**extra: str) -> dict[str, str]:
    """Every command's environment: the EE lab, its own fact cache, no real DigitalOcean."""
    out = {
        k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "OCPIZZA_LAB"))
    }
    lab = {
        "PREFIX": PREFIX,
        "SUBNET": SUBNET,
        "HTTP_PORT": HTTP_PORT,
        "HTTPS_PORT": HTTPS_PORT,
        "DIR": str(LAB_DIR),
        "INVENTORY": str(INVENTORY / "hosts.yml"),
        "TOPOLOGY": "small",
    }
    out.update({f"OCPIZZA_LAB_{key}": value for key, value in lab.items()})
    out["PATH"] = f"{ROOT / '.venv' / 'bin'}:{out.get('PATH', '')}"
    out["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    out["CONTAINERS_CONF"] = str(ROOT / "lab" / "containers.conf")
    out["ANSIBLE_NOCOLOR"] = "1"
    out["ANSIBLE_FORCE_COLOR"] = "0"
    # A fact cache of its own: the operator's lab facts never leak in.
    out["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(LAB_DIR / "facts")
    out.update(extra)
    return out


def run(
    cmd: list[str], log: str, timeout: int = 1800, **extra: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run from the repository root; the output goes to .ansible/logs/ee-<log>.log. Returns (result, seconds)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    res = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    took = time.monotonic() - start
    (LOGS / f"ee-{log}.log").write_text(
        f"$ {' '.join(cmd)}\n({took:.1f} s, rc={res.returncode})\n{res.stdout}\n{res.stderr}"
    )
    return res, took


def navigator(*args: str) -> list[str]:
    """ansible-navigator, in the EE, the way the issue asks for it (stdout, never pull)."""
    return [
        str(NAVIGATOR),
        *args,
        "--mode",
        "stdout",
        "--ee",
        "true",
        "--eei",
        IMAGE,
        "--pull-policy",
        "never",
    ]


def text(res: subprocess.CompletedProcess[str]) -> str:
    return " ".join((res.stdout + res.stderr).split())


def record(line: str) -> None:
    """Add a measured figure to .ansible/logs/ee-figures.txt (and the test's output)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / "ee-figures.txt").open("a") as out:
        out.write(line + "\n")
    print(line)


@pytest.fixture(scope="module")
def image() -> str:
    res = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", IMAGE],
        env=env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, f"no image {IMAGE}: run make ee first ({res.stderr.strip()})"
    assert NAVIGATOR.exists(), "no .venv-ee: run make ee first"
    record(f"image {IMAGE}: {int(res.stdout) / 1e6:.0f} MB")
    return IMAGE


@pytest.fixture(scope="module")
def lab(image: str) -> Iterator[Path]:
    """A small lab (db, app, web, forge) converged with site.yml; its inventory directory."""
    if not (REUSE and (INVENTORY / "hosts.yml").exists()):
        INVENTORY.mkdir(parents=True, exist_ok=True)
        # The lab's group_vars beside the generated hosts.yml, as in inventories/lab.
        link = INVENTORY / "group_vars"
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(ROOT / "inventories" / "lab" / "group_vars", INVENTORY))
        res, took = run(["ansible-playbook", "playbooks/lab.yml"], "lab")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        res, took = run(["ansible-playbook", "-i", str(INVENTORY), "playbooks/site.yml"], "site")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        record(f"site.yml on the EE lab (directly): {took:.1f} s")
    yield INVENTORY
    if not KEEP:
        run(["ansible-playbook", "playbooks/lab-destroy.yml"], "lab-destroy", timeout=600)


def in_ee_and_directly(playbook: str, lab: Path) -> str:
    """Run a playbook through navigator in the EE, then with ansible-playbook; record both times."""
    res, took = run(
        navigator("run", f"playbooks/{playbook}", "-i", str(lab)), f"navigator-{playbook}"
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    direct, direct_took = run(
        ["ansible-playbook", "-i", str(lab), f"playbooks/{playbook}"], playbook
    )
    assert direct.returncode == 0, direct.stdout[-3000:]
    record(
        f"{playbook}: navigator in the EE {took:.1f} s, ansible-playbook directly {direct_took:.1f} s"
    )
    return text(res)


def test_verify_passes_inside_the_ee(lab):
    assert "checks passed." in in_ee_and_directly("verify.yml", lab)


def test_status_passes_inside_the_ee(lab):
    out = in_ee_and_directly("status.yml", lab)
    for host, component in (("db1", "mysql"), ("app1", "gunicorn"), ("web1", "nginx")):
        assert f"{PREFIX}-{host} {component}" in out, f"no state of {component} on {host}"


def test_the_projects_plugins_load_inside_the_ee(lab):
    net = SUBNET.rsplit(".", 1)[0]
    res, _ = run(
        navigator("run", "tests/ee/probe.yml", "-i", str(lab), "-e", f"probe_web_address={net}.31"),
        "navigator-probe",
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "inside the execution environment: /usr/bin/python3" in text(res)


def test_the_inventory_plugin_lists_the_fake_apis_droplets_inside_the_ee(image):
    staging = ["ocpizza", "env:staging"]
    with FakeDigitalOcean(FakeConfig(max_per_page=2)) as fake:
        for name, group in (("db1", "dbservers"), ("app1", "appservers"), ("web1", "webservers")):
            droplet = fake.add_droplet(f"ocpizza-staging-{name}", [*staging, f"group:{group}"])
            fake._activate(droplet)
        fake.add_droplet(
            "ocpizza-production-web1", ["ocpizza", "env:production", "group:webservers"]
        )
        res, _ = run(
            navigator("inventory", "-i", "inventories/staging", "--list"),
            "navigator-inventory",
            DIGITALOCEAN_END_POINT=fake.url,
            DIGITALOCEAN_TOKEN=DEFAULT_TOKEN,
        )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    listed = json.loads(res.stdout[res.stdout.index("{") :])
    assert listed["dbservers"]["hosts"] == ["ocpizza-staging-db1"]
    assert listed["appservers"]["hosts"] == ["ocpizza-staging-app1"]
    assert listed["webservers"]["hosts"] == ["ocpizza-staging-web1"]
    # The project's group_vars reach them (vars plugin, inside the EE).
    assert listed["_meta"]["hostvars"]["ocpizza-staging-db1"]["ocpizza_do_size"] == "s-4vcpu-8gb"


def test_provision_plans_with_the_projects_module_inside_the_ee(image):
    # Under the project directory, which navigator mounts in the EE.
    (ROOT / ".ansible" / "ee-provision").mkdir(parents=True, exist_ok=True)
    extra = write_extra_vars(ROOT / ".ansible" / "ee-provision")
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.3)) as fake:
        res, _ = run(
            navigator(
                "run",
                "playbooks/provision.yml",
                "-i",
                "inventories/staging",
                "--check",
                "-e",
                f"@{extra}",
            ),
            "navigator-provision-check",
            DIGITALOCEAN_END_POINT=fake.url,
            DIGITALOCEAN_TOKEN=DEFAULT_TOKEN,
            PYTHON_DIGITALOCEAN_REQUEST_TIMEOUT_SEC="10",
        )
        writes = fake.writes()
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    out = text(res)
    assert "create droplet ocpizza-staging-db1 (dbservers, s-4vcpu-8gb" in out
    assert "monthly cost: $" in out
    assert writes == []
