#!/usr/bin/env bash
# Run the OC Pizza example's Django tests.
#
# Creates (or reuses) examples/ocpizza/.venv with a Python >= 3.11 found on
# PATH (OCPIZZA_PYTHON=/path/to/python to choose one), installs exactly what
# Pipfile.lock pins (runtime and dev packages, hashes checked), then runs
# `manage.py test` under ocpizza.settings.test. The install is skipped when
# the lock and the interpreter have not changed since the last run.
# Extra arguments go to `manage.py test` (e.g. shop.tests.test_healthz).
set -euo pipefail

app_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$app_dir/.venv"
stamp="$venv/.ocpizza-installed"
cd "$app_dir"

find_python() {
    local candidate
    for candidate in ${OCPIZZA_PYTHON:-} python3.13 python3.12 python3.11 python3; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' \
            >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
    python=$(find_python) || {
        echo "run-tests.sh: no Python >= 3.11 with venv/ensurepip found (set OCPIZZA_PYTHON)" >&2
        exit 1
    }
    echo "run-tests.sh: creating $venv with $python ($("$python" --version 2>&1))"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

wanted="$(sha256sum Pipfile.lock | cut -d' ' -f1) $("$venv/bin/python" -c 'import sys; print(sys.version)' | head -n1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    echo "run-tests.sh: installing Pipfile.lock into $venv"
    requirements="$venv/requirements-from-lock.txt"
    # Pipfile.lock -> pip requirements with hashes (same as `pipenv requirements --dev --hash`).
    "$venv/bin/python" - Pipfile.lock >"$requirements" <<'PY'
import json
import sys

lock = json.load(open(sys.argv[1], encoding="utf-8"))
for section in ("default", "develop"):
    for name, spec in sorted(lock.get(section, {}).items()):
        if "version" not in spec or not spec.get("hashes"):
            sys.exit(f"Pipfile.lock: {name} has no pinned version with hashes")
        line = name + spec["version"]
        if spec.get("markers"):
            line += "; " + spec["markers"]
        line += "".join(" --hash=" + digest for digest in spec["hashes"])
        print(line)
PY
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-hashes --no-deps -r "$requirements"
    echo "$wanted" >"$stamp"
else
    echo "run-tests.sh: $venv is up to date with Pipfile.lock"
fi

export DJANGO_SETTINGS_MODULE=ocpizza.settings.test
exec "$venv/bin/python" manage.py test --noinput "$@"
