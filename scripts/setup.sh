#!/usr/bin/env bash
# Prepare this machine as an OC Pizza control node and lab host.
#
#   scripts/setup.sh          (make setup)
#
# Idempotent: each step checks before it works, so a second run only checks.
#   1. Debian packages for the lab (podman, runc, netavark, debootstrap, ...)
#   2. .venv from Python >= 3.12 with the pinned requirements.txt
#   3. the collections of requirements.yml (offline: nothing to do)
#   4. the lab base images (Debian 12 and 13), rebuilt only when their recipe changes
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CONTAINERS_CONF=$root/lab/containers.conf

say() { printf '==> %s\n' "$*"; }

# 1. Debian packages -----------------------------------------------------------
apt_packages=(podman runc netavark aardvark-dns debootstrap fuse-overlayfs slirp4netns uidmap
              iptables openssh-client git make curl openssl)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $EUID -ne 0 ]]; then
        echo "setup: missing Debian packages: ${missing[*]}; run as root (rootful podman needs it)" >&2
        exit 1
    fi
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "Debian packages present"
fi

# 2. Python >= 3.12 and the virtualenv ----------------------------------------
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
setup: no Python >= 3.12 found (looked for python3.13, python3.12, python3 on PATH
and pyenv versions). ansible-core 2.21 needs Python 3.12 or newer on the control
node. Install one, for example: apt-get install python3.12 (Debian 13 / Ubuntu 24.04)
or pyenv install 3.12, then run make setup again.
MSG
        exit 1
    fi
    say "creating .venv with $py ($("$py" --version))"
    "$py" -m venv --clear .venv
fi
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    say ".venv up to date"
else
    say "installing requirements.txt into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements.txt
    echo "$want" >"$stamp"
fi

# 3. Collections -------------------------------------------------------------
say "collections: $(.venv/bin/ansible-galaxy collection install -r requirements.yml 2>&1 | tail -n 1)"

# 4. Lab images --------------------------------------------------------------
for suite in bookworm trixie; do
    bash lab/images/build.sh "$suite"
done
say "setup done"
