#!/usr/bin/env bash
# The control-node toolchain, and nothing else: what an operator's workstation
# needs to run the runbook (make site, deploy, verify, ... against
# inventories/production). No root, no apt, no podman, no lab images: those
# are the lab's (scripts/setup.sh, make setup).
#
#   scripts/toolchain.sh      (make toolchain; every runbook target runs it first)
#
# Idempotent and quiet when nothing is missing:
#   1. .venv from Python >= 3.12 with the pinned requirements.txt (reinstalled
#      only when requirements.txt changed)
#   2. the collections of requirements.yml (the pinned `ansible` package
#      bundles them: offline, nothing to do)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '==> %s\n' "$*"; }

# 1. Python >= 3.12 and the virtualenv ----------------------------------------
find_python() {
    local candidates=() c
    # Never the project's own .venv (the Makefile puts it first on PATH).
    local path_no_venv
    path_no_venv=$(tr ':' '\n' <<<"$PATH" | grep -vx "$root/.venv/bin" | paste -sd: -)
    for c in python3.13 python3.12 python3; do
        c=$(PATH=$path_no_venv command -v "$c" 2>/dev/null) && candidates+=("$c")
    done
    if command -v pyenv >/dev/null 2>&1; then
        for c in "$(pyenv root)"/versions/3.1[2-9]*/bin/python3; do [[ -x $c ]] && candidates+=("$c"); done
    fi
    for c in "${candidates[@]}"; do
        # pyenv shims exist on PATH but refuse to run an unselected version.
        if "$c" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
            echo "$c"; return 0
        fi
    done
    return 1
}

stamp=.venv/.ocpizza-requirements
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    if ! py=$(find_python); then
        cat >&2 <<MSG
toolchain: no Python >= 3.12 found (looked for python3.13, python3.12, python3 on
PATH and pyenv versions). ansible-core 2.21 needs Python 3.12 or newer on the
control node. Install one (Debian 13 / Ubuntu 24.04: the python3.12 package;
elsewhere: pyenv install 3.12), then run make toolchain again.
MSG
        exit 1
    fi
    say "creating .venv with $py ($("$py" --version))"
    "$py" -m venv --clear .venv
fi
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    [[ -n ${OCPIZZA_TOOLCHAIN_QUIET:-} ]] || say ".venv up to date"
else
    say "installing requirements.txt into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements.txt
    echo "$want" >"$stamp"
fi

# 2. Collections -------------------------------------------------------------
# Checked against what is installed (the ansible package's bundle, or
# ~/.ansible/collections); only a missing one is installed.
stamp_collections=.venv/.ocpizza-collections
want_collections=$(cat requirements.yml requirements.txt | sha256sum | cut -d' ' -f1)
if [[ -f $stamp_collections && $(cat "$stamp_collections") == "$want_collections" ]]; then
    [[ -n ${OCPIZZA_TOOLCHAIN_QUIET:-} ]] || say "collections present"
else
    say "collections: $(.venv/bin/ansible-galaxy collection install -r requirements.yml 2>&1 | tail -n 1)"
    echo "$want_collections" >"$stamp_collections"
fi
