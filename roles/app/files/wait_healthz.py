"""Wait until gunicorn's /healthz answers 200 with a release (role app, switch.yml).

    python3 -c "$(cat wait_healthz.py)" URL RELEASE PROGRAM TIMEOUT

Probes every second, for at most TIMEOUT seconds (each probe may take 5 s).
Stops at once when supervisor reports the program down (BACKOFF, FATAL,
EXITED, STOPPED) or its master replaced: a release that crashes at start
never answers, and waiting longer tells nothing. Exit status 0 when it
answers, else 1 with the reason and the last answer.
"""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

DOWN = ("BACKOFF", "FATAL", "EXITED", "STOPPED")


def supervisor_state(program: str) -> tuple[str, str]:
    """The program's state and, when RUNNING, its pid."""
    words = subprocess.run(
        ["supervisorctl", "status", program], capture_output=True, text=True, check=False
    ).stdout.split()
    state = words[1] if len(words) > 1 else "UNKNOWN"
    pid = (
        words[3].rstrip(",") if state == "RUNNING" and len(words) > 3 and words[2] == "pid" else ""
    )
    return state, pid


def probe(url: str) -> tuple[int, str | None, str]:
    """HTTP status (0: no answer), the release it reports, and a description."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            code, body = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read()
    except OSError as error:
        return 0, None, f"no answer ({error})"
    try:
        release = json.loads(body).get("release")
    except (ValueError, AttributeError):
        release = None
    return code, release, f"HTTP {code}, release {release!r}"


def main(url: str, release: str, program: str, timeout: int) -> int:
    end = time.monotonic() + max(timeout, 1)
    _, first_pid = supervisor_state(program)
    while True:
        code, answered, last = probe(url)
        if code == 200 and answered == release:
            print(f"{url} answers 200 with release {release}")
            return 0
        state, pid = supervisor_state(program)
        if state in DOWN or (first_pid and pid and pid != first_pid):
            how = state if state in DOWN else f"{state} with a new master"
            print(
                f"gunicorn crashed with release {release}: supervisor reports {how}"
                f" (`supervisorctl status {program}`); last /healthz: {last}",
                file=sys.stderr,
            )
            return 1
        if time.monotonic() >= end:
            print(
                f"{url} did not answer 200 with release {release} within {timeout} s; last: {last}",
                file=sys.stderr,
            )
            return 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
