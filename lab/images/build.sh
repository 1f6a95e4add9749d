#!/usr/bin/env bash
# Build (or reuse) a local systemd base image for the lab and molecule.
#
#   lab/images/build.sh bookworm|trixie [image-name]
#
# The image is tagged localhost/ocpizza-base:<suite> (or <image-name>:<suite>, to
# try a change under another name before retagging) and labelled with the
# sha256 of its recipe (every file of lab/images, the mirror, the package list
# and the host's extra CA certificates). It is rebuilt only when that recipe
# changes, so a clone with a changed recipe replaces an old image on the next
# `make setup`. No registry is needed: the root filesystem comes from
# debootstrap and Debian's mirror.
#
# These images are for the lab and the molecule scenarios ONLY; production hosts
# are DigitalOcean droplets and never built from them. That is why the images,
# and nothing in the roles, point apt at the control node's apt-cacher-ng
# (apt-proxy-detect: Debian's mirror through the cache when the host's gateway
# answers on 3142, directly otherwise).
set -euo pipefail

suite=${1:?usage: $0 bookworm|trixie [image-name]}
case "$suite" in bookworm|trixie) ;; *) echo "unknown suite '$suite' (bookworm or trixie)" >&2; exit 2;; esac

here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../containers.conf}
mirror=${OCPIZZA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
image=${2:-localhost/ocpizza-base}:$suite
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,ca-certificates,curl,openssh-server,gnupg,locales

# Extra CA certificates the host trusts (corporate TLS proxies): the image
# trusts them too, so apt, pip and git over https work inside the hosts.
shopt -s nullglob
extra_cas=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob

recipe=$( { cat "$here"/*; echo "$suite $mirror $packages"; for f in "${extra_cas[@]}"; do cat "$f"; done; } | sha256sum | cut -c1-16)

current=$(podman image inspect --format '{{ index .Labels "org.ocpizza.recipe" }}' "$image" 2>/dev/null || true)
if [[ "$current" == "$recipe" ]]; then
    echo "image $image is up to date (recipe $recipe)"
    exit 0
fi

# The control node's own cache (scripts/setup.sh), when it runs, serves debootstrap.
cache_proxy=
proxy_env=()
if timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3142' 2>/dev/null; then
    cache_proxy=http://127.0.0.1:3142
    proxy_env=(env "http_proxy=$cache_proxy")
fi

echo "building $image (recipe $recipe) from $mirror${cache_proxy:+ through $cache_proxy}"
work=$(mktemp -d /var/tmp/ocpizza-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

"${proxy_env[@]}" debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2; echo "debootstrap of $suite failed" >&2; exit 1; }

# Security updates and the -updates suite, as on a real server.
security=${mirror%/debian}/debian-security
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
SOURCES

for f in "${extra_cas[@]}"; do cp "$f" "$rootfs/usr/local/share/ca-certificates/"; done
chroot "$rootfs" update-ca-certificates >/dev/null

# Units that make no sense (or fail) inside a container.
for unit in systemd-remount-fs.service getty.target console-getty.service \
        systemd-logind.service systemd-udevd.service systemd-udev-trigger.service \
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
        dev-hugepages.mount systemd-firstboot.service systemd-modules-load.service \
        apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
: >"$rootfs/etc/machine-id"
# Host keys are generated per host at first boot, never baked into the image.
rm -f "$rootfs"/etc/ssh/ssh_host_*
mkdir -p "$rootfs/etc/systemd/system/ssh.service.d"
cat >"$rootfs/etc/systemd/system/ssh.service.d/hostkeys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
chroot "$rootfs" systemctl enable ssh.service >/dev/null 2>&1 || true
# Apt lists stay (an image without them breaks cache_valid_time); caches go.
"${proxy_env[@]}" chroot "$rootfs" apt-get update -qq >/dev/null
chroot "$rootfs" apt-get clean

# Lab and test hosts fetch Debian's mirror through the control node's
# apt-cacher-ng when it answers, directly otherwise (apt-proxy-detect). Plain
# http only: https repositories are never proxied.
mirror_host=${mirror#*://}
mirror_host=${mirror_host%%/*}
cache_hosts=$(printf '%s\n' "$mirror_host" deb.debian.org security.debian.org | sort -u | paste -sd' ' -)
install -D -m 0755 "$here/apt-proxy-detect" "$rootfs/usr/local/lib/ocpizza/apt-proxy-detect"
cat >"$rootfs/etc/default/ocpizza-apt-cache" <<DEFAULTS
# Read by /usr/local/lib/ocpizza/apt-proxy-detect (lab/images/build.sh): the
# mirror hosts fetched through the control node's apt-cacher-ng, and its port.
hosts="$cache_hosts"
port=3142
DEFAULTS
cat >"$rootfs/etc/apt/apt.conf.d/01ocpizza-apt-cache" <<'APTCONF'
// Lab and test images only (lab/images/build.sh), never production: Debian's
// mirror through the control node's apt-cacher-ng when it answers, else direct.
Acquire::http::Proxy-Auto-Detect "/usr/local/lib/ocpizza/apt-proxy-detect";
APTCONF

tar -C "$rootfs" -c . | podman import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    --change "LABEL org.ocpizza.recipe=$recipe" \
    --change "LABEL org.ocpizza.suite=$suite" \
    - "$image" >/dev/null
echo "built $image"
