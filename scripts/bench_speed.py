#!/usr/bin/env python3
"""The speed benchmark of issue 17 (``make bench BENCH=speed``): one table of figures.

Runs on the small lab of this working tree (the one ``make demo`` makes; the
``OCPIZZA_LAB_*`` variables choose its prefix, subnet and ports as for
``playbooks/lab.yml``) and measures, in one run:

- ``make demo`` again, nothing to do (``scripts/demo.sh``; when that run
  still changed something, it counts as the preparation and runs once more);
- the no-op ``site.yml`` of that run, per host-task;
- the same no-op ``site.yml`` with Ansible's defaults (the project's speed
  settings removed from a copy of ansible.cfg), and the ratio;
- the mysql role's no-op converge on the database host
  (``site.yml --tags mysql --limit dbservers``) against geerlingguy's 8.4 s;
- ``update.yml --tags app`` with nothing new, then after a code-only commit
  (the virtualenv reused) pushed to the forge's production branch;
- ``/healthz`` through nginx (TLS, keep-alive) against gunicorn directly, from
  inside the web host with the same client (scripts/bench_http.py), paired runs.

Every figure is printed with the command that produced it; each command's
whole output is in .ansible/logs/bench-speed-<step>.log and the figures in
.ansible/logs/bench-speed.json. ``--compare OLD.json`` adds a "before" column.
Not part of ``make test``.

Exit status: 0 when every measured figure meets its goal, 1 when one does
not (the table says which), 2 when a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

# Run as a file (make bench): its sibling module bench_table is imported from here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_table import (
    GEERLINGGUY_MYSQL_SECONDS,
    Figure,
    Run,
    at_least,
    at_most,
    changed,
    defaults_config,
    host_tasks,
    load_figures,
    parse_recap,
    ratio,
    render_table,
)

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".ansible" / "logs"
INVENTORY = "inventories/lab"


class Bench:
    """The steps, run against the lab of this working tree."""

    def __init__(self, env: dict[str, str], duration: float, pairs: int, clients: int) -> None:
        self.env = env
        self.duration = duration
        self.pairs = pairs
        self.clients = clients
        self.figures: list[Figure] = []

    def run(self, step: str, cmd: list[str], env: dict[str, str] | None = None) -> Run:
        """Run a command, its output timestamped into sections and logged; fail on rc != 0."""
        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / f"bench-speed-{step}.log"
        print(f"==> {step}: {shlex.join(cmd)}  (log: {log.relative_to(ROOT)})", flush=True)
        sections: list[tuple[str, float, str]] = []
        current: list[str] = []
        name, started = "", time.monotonic()
        lines: list[str] = []
        t0 = time.monotonic()
        with log.open("w") as out:
            out.write(f"$ {shlex.join(cmd)}\n")
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env or self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                lines.append(line)
                if line.startswith("==> "):
                    now = time.monotonic()
                    if name:
                        sections.append((name, now - started, "".join(current)))
                    name, started, current = line[4:].strip(), now, []
                else:
                    current.append(line)
            rc = proc.wait()
        seconds = time.monotonic() - t0
        if name:
            sections.append((name, time.monotonic() - started, "".join(current)))
        print(f"    {seconds:.1f} s, rc={rc}", flush=True)
        result = Run(cmd, seconds, rc, "".join(lines), sections)
        if rc != 0:
            raise RuntimeError(f"{step} failed (rc={rc}): see {log}")
        return result

    def inventory(self) -> dict[str, object]:
        """ansible-inventory --list of the lab."""
        out = subprocess.run(
            ["ansible-inventory", "-i", INVENTORY, "--list"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)

    def demo_again(self) -> Run:
        """make demo with nothing to do: scripts/demo.sh, run twice when the first changed."""
        cmd = ["bash", "scripts/demo.sh"]
        first = self.run("demo", cmd)
        if changed(parse_recap(first.output)) or any(
            changed(parse_recap(text)) for _, _, text in first.sections
        ):
            print("    the lab or the site changed: that was the preparation; again", flush=True)
            first = self.run("demo-again", cmd)
        sections = {name.split(" (")[0]: (sec, text) for name, sec, text in first.sections}
        lab = next((v for k, v in sections.items() if k.startswith("lab")), (None, ""))
        site = next((v for k, v in sections.items() if k.startswith("deploy")), (None, ""))
        left = changed(parse_recap(site[1])) + changed(parse_recap(lab[1]))
        self.figures.append(
            Figure(
                "demo_again",
                "`make demo` again, nothing to do",
                first.seconds,
                "s",
                "<= 45 s",
                at_most(first.seconds, 45) if not left else False,
                f"lab.yml {lab[0] or 0:.1f} s, site.yml {site[0] or 0:.1f} s; changed={left}",
                "bash scripts/demo.sh",
            )
        )
        recap = parse_recap(site[1])
        tasks = host_tasks(recap)
        per_task = ratio(site[0], tasks)
        self.figures.append(
            Figure(
                "site_per_task",
                "no-op `site.yml`, per host-task",
                per_task,
                "s/task",
                "<= 0.15 s",
                at_most(per_task, 0.15),
                f"{tasks} host-tasks on {len(recap)} hosts in {site[0] or 0:.1f} s",
                f"ansible-playbook -i {INVENTORY} playbooks/site.yml (in make demo)",
            )
        )
        return first

    def site_defaults(self, project_seconds: float | None) -> None:
        """The same no-op site.yml with Ansible's defaults instead of the speed settings."""
        bench_dir = ROOT / ".ansible" / "bench"
        bench_dir.mkdir(parents=True, exist_ok=True)
        cfg = bench_dir / "ansible-defaults.cfg"
        cfg.write_text(defaults_config((ROOT / "ansible.cfg").read_text(), ROOT))
        env = dict(self.env, ANSIBLE_CONFIG=str(cfg))
        cmd = ["ansible-playbook", "-i", INVENTORY, "playbooks/site.yml"]
        res = self.run("site-defaults", cmd, env)
        recap = parse_recap(res.output)
        speedup = ratio(res.seconds, project_seconds)
        self.figures.append(
            Figure(
                "site_defaults",
                "no-op `site.yml` with Ansible's defaults",
                res.seconds,
                "s",
                "",
                None,
                f"{host_tasks(recap)} host-tasks, changed={changed(recap)}",
                f"ANSIBLE_CONFIG={cfg.relative_to(ROOT)} {shlex.join(cmd)}",
            )
        )
        self.figures.append(
            Figure(
                "site_speedup",
                "project settings vs Ansible's defaults (no-op `site.yml`)",
                speedup,
                "x",
                ">= 2.5x",
                at_least(speedup, 2.5),
                "defaults' wall time / the project's",
                "(the two runs above)",
            )
        )

    def mysql_noop(self) -> None:
        """The mysql role's no-op converge on the database host."""
        cmd = [
            "ansible-playbook",
            "-i",
            INVENTORY,
            "playbooks/site.yml",
            "--tags",
            "mysql",
            "--limit",
            "dbservers",
        ]
        res = self.run("mysql", cmd)
        recap = parse_recap(res.output)
        self.figures.append(
            Figure(
                "mysql_noop",
                "mysql role no-op converge, one host",
                res.seconds,
                "s",
                f"geerlingguy.mysql {GEERLINGGUY_MYSQL_SECONDS} s (55 tasks)",
                at_most(res.seconds, GEERLINGGUY_MYSQL_SECONDS),
                f"{host_tasks(recap)} host-tasks, changed={changed(recap)}; "
                f"{res.seconds / GEERLINGGUY_MYSQL_SECONDS:.2f}x geerlingguy's",
                shlex.join(cmd),
            )
        )

    def deploys(self, inv: dict[str, object]) -> None:
        """update.yml --tags app with nothing new, then after a code-only commit."""
        cmd = ["ansible-playbook", "-i", INVENTORY, "playbooks/update.yml", "--tags", "app"]
        res = self.run("deploy-nothing-new", cmd)
        recap = parse_recap(res.output)
        self.figures.append(
            Figure(
                "deploy_nothing_new",
                "`update.yml --tags app`, nothing new",
                res.seconds,
                "s",
                "<= 8 s",
                at_most(res.seconds, 8),
                f"{host_tasks(recap)} host-tasks, changed={changed(recap)}",
                shlex.join(cmd),
            )
        )
        forge = _first(inv, "forge")
        marker = f"bench-{uuid.uuid4().hex[:10]}"
        script = "; ".join(
            [
                "set -e",
                "w=$(mktemp -d)",
                "trap 'rm -rf \"$w\"' EXIT",
                'git clone -q -b production /srv/git/ocpizza.git "$w/w"',
                'cd "$w/w"',
                f"echo {marker} > BENCH_MARKER",
                "git add BENCH_MARKER",
                "git -c user.name=bench -c user.email=bench@ocpizza.test"
                " commit -q -m 'bench: a code-only change'",
                "git push -q origin HEAD:production",
            ]
        )
        subprocess.run(
            ["podman", "exec", forge, "runuser", "-u", "git", "--", "sh", "-c", script],
            env=self.env,
            check=True,
            capture_output=True,
        )
        res = self.run("deploy-code-only", cmd)
        recap = parse_recap(res.output)
        self.figures.append(
            Figure(
                "deploy_code_only",
                "code-only deploy (`update.yml --tags app`, virtualenv reused)",
                res.seconds,
                "s",
                "<= 20 s",
                at_most(res.seconds, 20),
                f"new commit {marker} on the forge; {host_tasks(recap)} host-tasks, "
                f"changed={changed(recap)}",
                f"(push a commit to the forge's production branch) {shlex.join(cmd)}",
            )
        )

    def healthz(self, inv: dict[str, object]) -> None:
        """/healthz through nginx vs gunicorn directly, from inside the web host."""
        web = _first(inv, "webservers")
        app = _first(inv, "appservers")
        hostvars = inv["_meta"]["hostvars"]  # type: ignore[index]
        app_ip = hostvars[app]["ocpizza_private_ip"]  # type: ignore[index]
        contract = _yaml(ROOT / "group_vars/all/platform_contract.yml")
        port = contract["ocpizza_gunicorn_port"]
        path = contract["ocpizza_health_path"]
        names = hostvars[web].get("nginx_server_names")  # type: ignore[union-attr]
        if not names:
            names = _yaml(ROOT / "roles/nginx/defaults/main.yml")["nginx_server_names"]
        site = names[0]
        subprocess.run(
            ["podman", "cp", str(ROOT / "scripts/bench_http.py"), f"{web}:/tmp/bench_http.py"],
            env=self.env,
            check=True,
        )
        common = ["--host", site, "--clients", str(self.clients), "--duration", str(self.duration)]
        # The headers nginx adds on its way to gunicorn.
        direct = [
            f"http://{app_ip}:{port}{path}",
            *common,
            "--header",
            "X-Forwarded-Proto:https",
            "--header",
            f"X-Forwarded-Host:{site}",
        ]
        through = [f"https://127.0.0.1{path}", *common]
        pairs = []
        log = LOGS / "bench-speed-healthz.log"
        with log.open("w") as out:
            for _ in range(self.pairs):
                pair = {}
                for label, args in (("gunicorn", direct), ("nginx", through)):
                    cmd = ["podman", "exec", web, "python3", "/tmp/bench_http.py", *args]
                    res = subprocess.run(
                        cmd, env=self.env, capture_output=True, text=True, check=True
                    )
                    out.write(f"$ {shlex.join(cmd)}\n{res.stdout}")
                    pair[label] = json.loads(res.stdout)
                pairs.append(pair)
        subprocess.run(["podman", "exec", web, "rm", "-f", "/tmp/bench_http.py"], check=False)
        ratios = [ratio(p["nginx"]["rps"], p["gunicorn"]["rps"]) or 0.0 for p in pairs]
        bad = sum(p[k]["other"] + p[k]["errors"] for p in pairs for k in p)
        low = min(ratios)
        self.figures.append(
            Figure(
                "healthz_ratio",
                f"`{path}` through nginx (TLS, keepalive) vs gunicorn, req/s",
                low,
                "x",
                ">= 0.85x",
                at_least(low, 0.85) if not bad else False,
                f"lowest of {self.pairs} pairs ("
                + ", ".join(
                    f"{p['nginx']['rps']:.0f}/{p['gunicorn']['rps']:.0f}={r:.2f}"
                    for p, r in zip(pairs, ratios, strict=True)
                )
                + f"), {self.clients} clients x {self.duration:g} s, non-2xx/errors={bad}",
                f"podman exec {web} python3 scripts/bench_http.py (in the web host)",
            )
        )

    def fresh_demo(self) -> None:
        """The fresh-machine figure: not measurable here (it needs a machine with nothing)."""
        self.figures.append(
            Figure(
                "demo_fresh",
                "`make demo` on a fresh machine",
                None,
                "s",
                "<= 5 min",
                None,
                "needs a machine with no podman, .venv or images: time it there",
                "time make demo",
            )
        )


def _first(inv: dict[str, object], group: str) -> str:
    """The first host of an inventory group."""
    hosts = inv.get(group, {}).get("hosts", [])  # type: ignore[union-attr]
    if not hosts:
        raise RuntimeError(f"the lab inventory has no host in group {group}: run make demo first")
    return hosts[0]


def _yaml(path: Path) -> dict[str, object]:
    """A YAML file (PyYAML comes with Ansible)."""
    import yaml

    return yaml.safe_load(path.read_text())


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module's docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--compare", type=Path, help="an earlier run's bench-speed.json")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per healthz run")
    parser.add_argument("--pairs", type=int, default=3, help="paired healthz runs")
    parser.add_argument("--clients", type=int, default=4, help="healthz clients")
    parser.add_argument(
        "--only",
        action="append",
        choices=["demo", "defaults", "mysql", "deploy", "healthz"],
        help="run only these steps (repeatable); demo is the base of the per-task figures",
    )
    args = parser.parse_args(argv)
    before = load_figures(args.compare) if args.compare else None
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", NO_COLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0")
    env["PATH"] = f"{ROOT / '.venv/bin'}:{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    env.setdefault("CONTAINERS_CONF", str(ROOT / "lab/containers.conf"))
    bench = Bench(env, args.duration, args.pairs, args.clients)
    steps = set(args.only or ["demo", "defaults", "mysql", "deploy", "healthz"])
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = 0
    try:
        bench.fresh_demo()
        project_site = None
        if "demo" in steps:
            demo = bench.demo_again()
            project_site = next(
                (sec for name, sec, _ in demo.sections if name.startswith("deploy")), None
            )
        if "defaults" in steps:
            bench.site_defaults(project_site)
        if "mysql" in steps:
            bench.mysql_noop()
        inv = bench.inventory()
        if "deploy" in steps:
            bench.deploys(inv)
        if "healthz" in steps:
            bench.healthz(inv)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        status = 2
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "bench-speed.json").write_text(
        json.dumps({"started": started, "figures": [asdict(f) for f in bench.figures]}, indent=1)
    )
    print()
    print(f"Speed benchmark (issue 17), {os.cpu_count()} cores, started {started}")
    print(render_table(bench.figures, before))
    print(f"(figures: {(LOGS / 'bench-speed.json').relative_to(ROOT)})")
    if status == 0 and any(f.met is False for f in bench.figures):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
