#!/usr/bin/env bash
# Build the execution environment (EE) image that AWX / Ansible Automation
# Platform and ansible-navigator run the playbooks in (make ee).
#
#   scripts/ee.sh            build localhost/ocpizza-ee:latest when its recipe changed
#
# 1. .venv-ee: ansible-builder and ansible-navigator, pinned in
#    requirements-ee.txt (reinstalled only when that file changed).
# 2. The base image, localhost/ocpizza-base:trixie (lab/images/build.sh): the
#    EE is Debian 13 because ansible-core 2.21 needs Python >= 3.12.
# 3. `ansible-builder create` writes the build context from
#    execution-environment.yml into .ansible/ee-context; podman builds it.
#    The image is labelled with the sha256 of its recipe (the definition, the
#    files it copies, requirements.yml, the base image's id), and rebuilt only
#    when that changes. The build's output is in .ansible/logs/ee-build.log.
# 4. /dev/mqueue, which ansible-navigator requires with podman.
#
# Environment: OCPIZZA_EE_IMAGE (default localhost/ocpizza-ee:latest).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/lab/containers.conf}
image=${OCPIZZA_EE_IMAGE:-localhost/ocpizza-ee:latest}
base=localhost/ocpizza-base:trixie

say() { printf '==> %s\n' "$*"; }

# 1. The EE tools ------------------------------------------------------------
python=.venv/bin/python3
[[ -x $python ]] || { echo "ee: no .venv; run make toolchain first" >&2; exit 1; }
stamp=.venv-ee/.ocpizza-requirements
want=$(sha256sum requirements-ee.txt | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    say ".venv-ee up to date"
else
    say "installing requirements-ee.txt into .venv-ee"
    "$python" -m venv --clear .venv-ee
    .venv-ee/bin/pip install -q --upgrade pip
    .venv-ee/bin/pip install -q -r requirements-ee.txt
    echo "$want" >"$stamp"
fi

# 2. The base image ----------------------------------------------------------
bash lab/images/build.sh trixie

# 3. The EE image ------------------------------------------------------------
base_id=$(podman image inspect --format '{{.Id}}' "$base")
recipe=$( { cat execution-environment.yml requirements.yml ee/* scripts/ee.sh; echo "$base_id"; } \
    | sha256sum | cut -c1-16)
current=$(podman image inspect --format '{{ index .Labels "org.ocpizza.recipe" }}' "$image" 2>/dev/null || true)
if [[ $current == "$recipe" ]]; then
    say "image $image is up to date (recipe $recipe)"
else
    context=.ansible/ee-context
    rm -rf "$context"
    .venv-ee/bin/ansible-builder create -f execution-environment.yml -c "$context" \
        --output-filename Containerfile >/dev/null
    mkdir -p .ansible/logs
    log=.ansible/logs/ee-build.log
    say "building $image (recipe $recipe) from $base; output in $log"
    start=$SECONDS
    if ! podman build --pull=never --layers -f "$context/Containerfile" \
            --label "org.ocpizza.recipe=$recipe" -t "$image" "$context" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "ee: the build of $image failed (whole output: $log)" >&2
        exit 1
    fi
    say "built $image in $((SECONDS - start)) s"
fi
# 4. What ansible-navigator needs of this machine ------------------------------
# It refuses podman without a /dev/mqueue directory (ansible-runner starts
# the EE with --ipc=host; ansible/ansible-navigator#610). Machines whose PID 1
# is not systemd may have none; /dev is a tmpfs, so it is gone after a reboot
# and made again here.
if [[ ! -d /dev/mqueue ]]; then
    if [[ $EUID -eq 0 ]]; then
        mkdir -p /dev/mqueue
        mount -t mqueue mqueue /dev/mqueue 2>/dev/null || true
        say "/dev/mqueue created (ansible-navigator needs it with podman)"
    else
        echo "ee: /dev/mqueue is missing and ansible-navigator needs it with podman: sudo mkdir /dev/mqueue" >&2
    fi
fi

size=$(podman image inspect --format '{{.Size}}' "$image")
say "$image: $((size / 1000000)) MB; run it: .venv-ee/bin/ansible-navigator run playbooks/verify.yml"
