"""The lab's apt cache: scripts/apt-cache-stats.sh and lab/images/apt-proxy-detect.

The stats script reads apt-cacher-ng's log (epoch|flag|bytes|client|path); the
proxy detector is what apt runs in the lab's hosts to choose between the control
node's cache and the mirror. Both are shell; these tests run them as apt and the
lead do, against a fixture log and a throwaway listening socket.
"""

import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATS = ROOT / "scripts" / "apt-cache-stats.sh"
DETECT = ROOT / "lab" / "images" / "apt-proxy-detect"

DEB = "debrep/pool/main/h/haproxy/haproxy_2.6.12-1_amd64.deb"
LIB = "debrep/pool/main/o/opentracing/libopentracing1_1.6.0-4_amd64.deb"
LOG = "\n".join(
    [
        # Before the mark: a miss of another host's run, not counted with --since 1000.
        f"900|I|100|10.89.1.2|{LIB}",
        f"900|O|100|10.89.1.2|{LIB}",
        # First host: both packages fetched (misses), one index file re-checked.
        f"1000|I|2000|10.89.65.2|{DEB}",
        f"1000|O|2000|10.89.65.2|{DEB}",
        "1000|I|500|10.89.65.2|debrep/dists/bookworm/InRelease",
        "1000|O|500|10.89.65.2|debrep/dists/bookworm/InRelease",
        # Second and third hosts: served from the cache (hits).
        f"1010|O|2000|10.89.65.3|{DEB}",
        f"1010|O|100|10.89.65.3|{LIB}",
        f"1020|O|2000|10.89.50.2|{DEB}",
        "1030|E|652|10.89.65.3|debrep/dists/nowhere/Release [HTTP error, code: 404]",
        "not a log line",
    ]
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script of the repository, capturing its output."""
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """An apt-cacher-ng log with hits, misses, index files and an error."""
    path = tmp_path / "apt-cacher.log"
    path.write_text(LOG + "\n")
    return path


def kv(text: str) -> dict[str, int]:
    """Parse the --format kv line."""
    return {k: int(v) for k, v in (item.split("=") for item in text.split())}


def test_counts_hits_and_misses_since_a_point(log: Path) -> None:
    result = run(str(STATS), "--log", str(log), "--since", "1000", "--format", "kv")
    assert result.returncode == 0, result.stderr
    assert kv(result.stdout) == {
        "hits": 3,
        "misses": 1,
        "saved_bytes": 4100,
        "fetched_bytes": 2000,
        "index_sent": 1,
        "index_fetched": 1,
        "errors": 1,
    }


def test_whole_log_and_client_filter(log: Path) -> None:
    whole = kv(run(str(STATS), "--log", str(log), "--format", "kv").stdout)
    assert (whole["hits"], whole["misses"]) == (3, 2)
    lab = kv(run(str(STATS), "--log", str(log), "--client", "10.89.65.", "--format", "kv").stdout)
    assert (lab["hits"], lab["misses"]) == (2, 1)


def test_mark_file_and_text_output(log: Path, tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    assert run(str(STATS), "--mark", str(mark)).returncode == 0
    assert mark.read_text().strip().isdigit()
    mark.write_text("1010\n")
    result = run(str(STATS), "--log", str(log), "--since-mark", str(mark))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("apt-cacher-ng: 3 package downloads served from the cache")
    assert "0 fetched from the mirror" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since needs an epoch"),
        (["--since-mark", "/nonexistent/mark"], "--since-mark needs a file"),
        (["--format", "json"], "--format is text or kv"),
        (["--bogus"], "unknown argument '--bogus'"),
    ],
)
def test_bad_arguments_are_named(log: Path, args: list[str], message: str) -> None:
    result = run(str(STATS), "--log", str(log), *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_log_says_so(tmp_path: Path) -> None:
    result = run(str(STATS), "--log", str(tmp_path / "none.log"))
    assert result.returncode == 1
    assert "no apt-cacher-ng log" in result.stderr


@pytest.fixture
def gateway(tmp_path: Path) -> Path:
    """A fake `ip` that reports 127.0.0.1 as the default gateway, first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ip = bin_dir / "ip"
    ip.write_text("#!/bin/sh\necho 'default via 127.0.0.1 dev lo proto static'\n")
    ip.chmod(0o755)
    return bin_dir


def detect(bin_dir: Path, defaults: Path, uri: str) -> str:
    """What apt would be told for uri."""
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "OCPIZZA_APT_CACHE_DEFAULTS": str(defaults)}
    result = subprocess.run([str(DETECT), uri], capture_output=True, text=True, check=True, env=env)
    return result.stdout.strip()


def test_mirror_goes_through_the_gateway_when_it_answers(gateway: Path, tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        defaults = tmp_path / "defaults"
        defaults.write_text(f'hosts="deb.debian.org mirror.example"\nport={port}\n')
        assert detect(gateway, defaults, "http://deb.debian.org") == f"http://127.0.0.1:{port}"
        assert detect(gateway, defaults, "http://mirror.example:80/debian") == (
            f"http://127.0.0.1:{port}"
        )
        # Not Debian's mirror, or not plain http: never through the cache.
        assert detect(gateway, defaults, "http://apt.example.org/x") == "DIRECT"
        assert detect(gateway, defaults, "https://deb.debian.org") == "DIRECT"


def test_no_cache_means_direct(gateway: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connection refused
        defaults = tmp_path / "defaults"
        defaults.write_text(f"port={port}\n")
        assert detect(gateway, defaults, "http://deb.debian.org") == "DIRECT"
