"""A package whose build hook tries what a hostile dependency would (molecule/app).

pipenv installs it from the release (a path dependency of the changed lock);
pip runs this file as whoever runs pipenv. It tries to write outside its build
(the system, the live release, the shared virtualenvs) and to read the
application's secrets, and reports what happened in its user's home, where the
scenario's test reads it. As root (the old build) every attempt succeeds.
"""

import json
import os
from pathlib import Path

from setuptools import setup


def attempt(action, path):
    """What the attempt gave: "done" or the error's name."""
    try:
        action(Path(path))
    except OSError as error:
        return type(error).__name__
    return "done"


def write(path):
    path.write_text("written by a build hook\n")


report = {
    "uid": os.getuid(),
    "write_etc": attempt(write, "/etc/ocpizza-build-hook"),
    "write_live_release": attempt(write, "/srv/ocpizza/current/build-hook"),
    "write_venvs": attempt(write, "/srv/ocpizza/shared/venvs/build-hook"),
    "read_app_env": attempt(lambda path: path.read_text(), "/etc/ocpizza/app.env"),
}
home = Path(os.environ.get("HOME") or "/nonexistent")
try:
    (home / "build-hook-report.json").write_text(json.dumps(report))
except OSError:
    pass

setup(name="buildhook", version="1.0", py_modules=[])
