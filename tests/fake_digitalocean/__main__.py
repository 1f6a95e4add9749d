"""Run the fake DigitalOcean API by hand, to try the playbooks without an account.

    .venv/bin/python -m tests.fake_digitalocean --port 8765
    export DIGITALOCEAN_END_POINT=http://127.0.0.1:8765/v2/
    export DIGITALOCEAN_TOKEN=fake-digitalocean-token
    .venv/bin/ansible-playbook -i inventories/staging playbooks/provision.yml \\
        -e ocpizza_do_wait_for_ssh=false

It listens on 127.0.0.1 only and keeps its state in memory until Ctrl-C.
"""

from __future__ import annotations

import argparse
import threading

from .server import DEFAULT_TOKEN, FakeConfig, FakeDigitalOcean


def main() -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the one token accepted")
    parser.add_argument(
        "--active-after", type=float, default=2.0, help="seconds before a droplet is active"
    )
    args = parser.parse_args()
    fake = FakeDigitalOcean(FakeConfig(token=args.token, active_after_seconds=args.active_after))
    fake.start(port=args.port)
    print(
        f"fake DigitalOcean API on {fake.url} (token {args.token!r}); Ctrl-C stops it", flush=True
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
