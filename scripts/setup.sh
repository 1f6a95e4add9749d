#!/usr/bin/env bash
# Prepare this machine as an OC Pizza control node and lab host.
#
#   scripts/setup.sh          (make setup)
#
# Idempotent: each step checks before it works, so a second run only checks.
#   1. Debian packages for the lab (podman, runc, netavark, debootstrap, apt-cacher-ng, ...)
#      and the browser test (chromium, chromium-driver)
#      and apt-cacher-ng running for the lab's containers (OCPIZZA_APT_CACHE=off skips it)
#   2-3. the control-node toolchain: scripts/toolchain.sh (.venv, collections)
#   4. the lab base images (Debian 12, and the suites the role scenarios name; or
#      OCPIZZA_LAB_SUITES), rebuilt only when their recipe changes, built while the
#      toolchain installs
#   (and, as root, the inotify instances the lab's systemd containers need)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CONTAINERS_CONF=$root/lab/containers.conf

say() { printf '==> %s\n' "$*"; }

# The apt cache of the lab (apt-cacher-ng on this machine, port 3142) --------
# Lab and molecule hosts (lab/images: apt-proxy-detect) fetch Debian's mirror
# through it when their gateway answers on 3142, directly otherwise, so each
# package is downloaded once per machine. It listens on IPv4 (0.0.0.0: podman's
# bridges come and go with their networks, so no fixed address to bind) and an
# iptables chain admits only loopback and podman's networks: 10.88.0.0/16 (the
# default network) and 10.89.0.0/16 (the pool of named networks: the labs and
# molecule's). OCPIZZA_APT_CACHE_CLIENTS replaces that list.
apt_cache_clients=${OCPIZZA_APT_CACHE_CLIENTS:-10.88.0.0/16 10.89.0.0/16}
apt_cache_chain=OCPIZZA-APT-CACHE

# Writes our settings; prints "changed" when a file changed.
apt_cache_conf() {
    local conf=/etc/apt-cacher-ng/zzz_ocpizza.conf backends=/etc/apt-cacher-ng/backends_debian want
    mkdir -p /etc/apt-cacher-ng
    want=$'# Written by OC Pizza\'s scripts/setup.sh: IPv4 only; an iptables chain\n'
    want+=$'# ('"$apt_cache_chain"$') admits loopback and podman\'s networks only.\nBindAddress: 0.0.0.0\n'
    if [[ ! -f $conf || $(cat "$conf") != "${want%$'\n'}" ]]; then
        printf '%s' "$want" >"$conf"; echo changed
    fi
    # The package derives the Debian backend from sources.list, and finds none in
    # the deb822 format (Debian 12's default): it then asks ftp.debian.org, which
    # a filtered network may not resolve. deb.debian.org is Debian's CDN.
    if [[ -d /etc/apt-cacher-ng && -f /usr/sbin/apt-cacher-ng ]] \
            && ! grep -qsv '^[[:space:]]*\(#\|$\)' "$backends"; then
        echo 'http://deb.debian.org/debian/' >"$backends"; echo changed
    fi
}

apt_cache_firewall() {
    local want=("-N $apt_cache_chain" "-A $apt_cache_chain -i lo -j RETURN") net
    for net in $apt_cache_clients; do want+=("-A $apt_cache_chain -s $net -j RETURN"); done
    want+=("-A $apt_cache_chain -p tcp -j REJECT --reject-with tcp-reset")
    if [[ $(iptables -w -S "$apt_cache_chain" 2>/dev/null) != "$(printf '%s\n' "${want[@]}")" ]]; then
        iptables -w -N "$apt_cache_chain" 2>/dev/null || iptables -w -F "$apt_cache_chain"
        for rule in "${want[@]:1}"; do
            read -ra args <<<"$rule"
            iptables -w "${args[@]}"
        done
    fi
    iptables -w -C INPUT -p tcp --dport 3142 -j "$apt_cache_chain" 2>/dev/null \
        || iptables -w -I INPUT -p tcp --dport 3142 -j "$apt_cache_chain"
}

# Bounded, but not so short that a busy machine's slow accept reads as "down"
# (which would restart the cache under the labs' running apt downloads).
apt_cache_answers() { timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3142' 2>/dev/null; }

# 1. Debian packages -----------------------------------------------------------
apt_packages=(podman runc netavark aardvark-dns debootstrap fuse-overlayfs slirp4netns uidmap
              iptables openssh-client git make curl openssl
              # The platform run's browser test (tests/platform/test_90_browser.py): headless
              # Chromium, its driver, certutil for a private trust store of the lab CA, and
              # a font for readable screenshots (a Recommends --no-install-recommends drops).
              chromium chromium-driver libnss3-tools fonts-liberation)
apt_cache=${OCPIZZA_APT_CACHE:-on}
[[ $apt_cache == off ]] || apt_packages+=(apt-cacher-ng)
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
    # Our settings are in place before the cache's first start (see apt_cache_conf).
    [[ $apt_cache == off ]] || apt_cache_conf >/dev/null
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "Debian packages present"
fi

if [[ $apt_cache == off ]]; then
    say "apt cache skipped (OCPIZZA_APT_CACHE=off): lab hosts fetch Debian's mirror directly"
elif [[ $EUID -ne 0 ]]; then
    if apt_cache_answers; then say "apt cache answers on 3142"
    else echo "setup: apt-cacher-ng is not running; run make setup as root to start it (lab hosts fetch directly meanwhile)" >&2
    fi
else
    apt_cache_firewall
    if [[ -n $(apt_cache_conf) ]] || ! apt_cache_answers; then
        service apt-cacher-ng restart >/dev/null
        for _ in 1 2 3 4 5; do apt_cache_answers && break; sleep 1; done
        apt_cache_answers || { echo "setup: apt-cacher-ng did not start (see /var/log/apt-cacher-ng/)" >&2; exit 1; }
        say "apt cache (apt-cacher-ng) started on 3142 for ${apt_cache_clients// /, }"
    else
        say "apt cache (apt-cacher-ng) running on 3142"
    fi
fi

# Each lab or test host is a container running systemd, which takes several
# inotify instances; the kernel's default of 128 per user runs out with a few
# dozen of them ("Too many open files" in a container's systemd, which then
# never finishes booting). Raised for the running kernel only, never lowered.
inotify_instances=${OCPIZZA_INOTIFY_INSTANCES:-1024}
if (($(sysctl -n fs.inotify.max_user_instances) < inotify_instances)); then
    if [[ $EUID -eq 0 ]]; then
        sysctl -qw fs.inotify.max_user_instances="$inotify_instances"
        say "inotify instances per user raised to $inotify_instances (for the lab's systemd containers)"
    else
        echo "setup: fs.inotify.max_user_instances is below $inotify_instances; run make setup as root to raise it" >&2
    fi
fi

# 4. Lab images, built while the toolchain installs (the one mostly waits on the
# mirror and the disk, the other on PyPI): Debian 12's, which the lab and the
# platform run use, and those the role scenarios name (molecule/*/molecule.yml:
# some run on Debian 13 too). A lab on another suite builds its image itself
# (playbooks/lab.yml -e lab_suite=trixie, make ee). OCPIZZA_LAB_SUITES names
# the suites instead: make demo builds Debian 12's only.
lab_suites=${OCPIZZA_LAB_SUITES:-$(
    { echo bookworm; grep -ho 'ocpizza-base:[a-z]*' molecule/*/molecule.yml 2>/dev/null | cut -d: -f2; } \
        | awk '!seen[$0]++'
)}
mkdir -p .ansible/logs
images_log=.ansible/logs/setup-images.log
(
    for suite in $lab_suites; do
        bash lab/images/build.sh "$suite" || exit 1
    done
) >"$images_log" 2>&1 &
images=$!

# 2-3. The control-node toolchain (.venv, collections): the part an operator's
# workstation needs too, in one place -------------------------------------------
toolchain_rc=0
bash scripts/toolchain.sh || toolchain_rc=$?
# 3b. promtool, for the alert rules' unit tests: extracted from Debian's
# prometheus .deb, without installing its daemon.
((toolchain_rc)) || bash scripts/promtool.sh || toolchain_rc=$?
images_rc=0
wait "$images" || images_rc=$?
cat "$images_log"
((toolchain_rc == 0)) || { echo "setup: the toolchain failed (above)" >&2; exit "$toolchain_rc"; }
((images_rc == 0)) || { echo "setup: a lab image failed to build ($images_log, above)" >&2; exit 1; }
say "setup done"
