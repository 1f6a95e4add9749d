"""Switching the lab between Debian 12 and 13 never runs on an earlier host's facts.

The issue this guards (issue 12, "a rebuilt host is a new host"): after
``make demo`` on Debian 12, ``playbooks/lab.yml -e lab_suite=trixie`` and a
run of ``site.yml`` failed on every host with "The module interpreter
'/usr/bin/python3.11' was not found": the Debian 12 hosts' discovered
interpreter was still in the fact cache. Two fixes meet here, and each is
checked on its own:

* the lab role deletes the cache entries of the hosts it re-creates, so the
  next run gathers the new host's facts (release, addresses);
* the interpreter is pinned (``ansible_python_interpreter`` in
  ``group_vars/all/main.yml``), so even a stale cache that nobody cleaned
  (a droplet rebuilt by hand) cannot send a module to a Python that is gone.

The test does what a new user does: lab.yml (Debian 12), a run, lab.yml
``-e lab_suite=trixie``, a run, lab.yml again (back to 12), a run, all with
the project's ansible.cfg (smart gathering, jsonfile cache in a directory of
its own). A run is ``probe.yml``: facts, one module, and the facts' release
against the host's /etc/debian_version. About 3.5 minutes on 2 busy cores (three lab
builds of four hosts); it needs root, podman and both base images, so it runs
only with OCPIZZA_RELAB=1 (``make test-full``).

Environment: OCPIZZA_RELAB_PREFIX, OCPIZZA_RELAB_SUBNET, OCPIZZA_RELAB_DIR,
OCPIZZA_RELAB_HTTP_PORT and OCPIZZA_RELAB_HTTPS_PORT place the lab beside
any other (defaults: ocpizza-relab, 10.89.53.0/24, .ansible/relab-lab,
29080, 29443); OCPIZZA_RELAB_KEEP=1 keeps it afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".ansible" / "logs"
PREFIX = os.environ.get("OCPIZZA_RELAB_PREFIX", "ocpizza-relab")
SUBNET = os.environ.get("OCPIZZA_RELAB_SUBNET", "10.89.53.0/24")
LAB_DIR = Path(os.environ.get("OCPIZZA_RELAB_DIR", str(ROOT / ".ansible" / "relab-lab")))
KEEP = os.environ.get("OCPIZZA_RELAB_KEEP") == "1"
MAJOR = {"bookworm": 12, "trixie": 13}

pytestmark = pytest.mark.skipif(
    os.environ.get("OCPIZZA_RELAB") != "1",
    reason="builds a lab three times (root, podman, ~3.5 min): set OCPIZZA_RELAB=1 (make test-full)",
)


def env(cache: Path | None = None) -> dict[str, str]:
    """The environment of every command: the relab lab, its own fact cache."""
    out = os.environ.copy()
    out.update(
        PATH=f"{ROOT / '.venv' / 'bin'}:{out.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        CONTAINERS_CONF=str(ROOT / "lab" / "containers.conf"),
        ANSIBLE_NOCOLOR="1",
        OCPIZZA_LAB_PREFIX=PREFIX,
        OCPIZZA_LAB_SUBNET=SUBNET,
        OCPIZZA_LAB_HTTP_PORT=os.environ.get("OCPIZZA_RELAB_HTTP_PORT", "29080"),
        OCPIZZA_LAB_HTTPS_PORT=os.environ.get("OCPIZZA_RELAB_HTTPS_PORT", "29443"),
        OCPIZZA_LAB_DIR=str(LAB_DIR),
        OCPIZZA_LAB_INVENTORY=str(LAB_DIR / "hosts.yml"),
        OCPIZZA_LAB_TOPOLOGY="small",
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(cache or LAB_DIR / "facts"),
    )
    out.pop("OCPIZZA_LAB_SUITE", None)
    return out


def run(*cmd: str, log: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; keep its output in .ansible/logs/relab-<log>."""
    LOGS.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    res = subprocess.run(
        list(cmd),
        cwd=ROOT,
        env=env(cache),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    took = time.monotonic() - start
    (LOGS / f"relab-{log}.log").write_text(
        f"$ {' '.join(cmd)}\n({took:.0f} s, rc={res.returncode})\n{res.stdout}\n{res.stderr}"
    )
    return res


def lab(suite: str) -> None:
    """playbooks/lab.yml on the given Debian release, as the README says."""
    res = run(
        "ansible-playbook", "playbooks/lab.yml", "-e", f"lab_suite={suite}", log=f"lab-{suite}"
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def probe(suite: str, log: str) -> subprocess.CompletedProcess[str]:
    """The cut-down run of probe.yml, expecting the suite's release everywhere."""
    return run(
        "ansible-playbook",
        "-i",
        str(LAB_DIR / "hosts.yml"),
        "tests/relab/probe.yml",
        "-e",
        f"relab_major={MAJOR[suite]}",
        log=log,
    )


def cached_interpreters(cache: Path) -> dict[str, str]:
    """{host: discovered_interpreter_python} of a jsonfile fact cache."""
    found = {}
    for entry in cache.iterdir():
        facts = json.loads(entry.read_text() or "{}")
        # ansible-core 2.19+ wraps an entry: {"__payload__": "<the facts as JSON>"}.
        if isinstance(facts.get("__payload__"), str):
            facts = json.loads(facts["__payload__"])
        if "discovered_interpreter_python" in facts:
            found[entry.name] = facts["discovered_interpreter_python"]
    return found


def ping(cache: Path, *extra: str, log: str) -> subprocess.CompletedProcess[str]:
    """A module on every host, with the facts of the given cache (no gathering)."""
    return run(
        "ansible-playbook",
        "-i",
        str(LAB_DIR / "hosts.yml"),
        "tests/relab/ping.yml",
        *extra,
        log=log,
        cache=cache,
    )


@pytest.fixture(scope="module")
def relab() -> Iterator[None]:
    """A clean fact cache; the lab destroyed afterwards unless OCPIZZA_RELAB_KEEP=1."""
    shutil.rmtree(LAB_DIR / "facts", ignore_errors=True)
    yield
    if not KEEP:
        run("ansible-playbook", "playbooks/lab-destroy.yml", log="destroy")


def test_switching_debian_releases_back_and_forth(relab: None, tmp_path: Path) -> None:
    cache = LAB_DIR / "facts"

    lab("bookworm")
    # The cache as it was before the pin: a run that discovers the interpreter
    # records the Debian 12 path. Kept aside as the cache nobody cleaned.
    discovered = run(
        "ansible-playbook",
        "-i",
        str(LAB_DIR / "hosts.yml"),
        "tests/relab/probe.yml",
        "-e",
        "relab_major=12 ansible_python_interpreter=auto_silent",
        log="probe-discover",
    )
    assert discovered.returncode == 0, discovered.stdout[-3000:]
    stale = tmp_path / "stale-facts"
    shutil.copytree(cache, stale)
    assert set(cached_interpreters(stale).values()) == {"/usr/bin/python3.11"}
    first = probe("bookworm", "probe-bookworm")
    assert first.returncode == 0, first.stdout[-3000:]

    lab("trixie")
    second = probe("trixie", "probe-trixie")
    assert second.returncode == 0, second.stdout[-3000:]

    # A stale cache (a host rebuilt behind the lab's back) cannot stop a module:
    # the interpreter is pinned. Without the pin it would, which shows the
    # stale entry is real and the pin is what saves the run.
    pinned = ping(stale, log="ping-stale-pinned")
    assert pinned.returncode == 0, pinned.stdout[-3000:]
    unpinned = ping(
        stale, "-e", "ansible_python_interpreter=auto_silent", log="ping-stale-unpinned"
    )
    assert unpinned.returncode != 0
    assert "python3.11" in unpinned.stdout + unpinned.stderr

    # And back: the README's way to Debian 12 again (make demo failed here).
    lab("bookworm")
    third = probe("bookworm", "probe-bookworm-again")
    assert third.returncode == 0, third.stdout[-3000:]
