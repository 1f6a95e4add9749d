#!/usr/bin/env bash
# Build (or reuse) a local systemd base image for the lab and molecule.
#
#   lab/images/build.sh bookworm|trixie
#
# The image is tagged localhost/ocpizza-base:<suite> and labelled with the
# sha256 of its recipe (this script, the package list and the host's extra CA
# certificates). It is rebuilt only when that recipe changes. No registry is
# needed: the root filesystem comes from debootstrap and Debian's mirror.
set -euo pipefail

suite=${1:?usage: $0 bookworm|trixie}
case "$suite" in bookworm|trixie) ;; *) echo "unknown suite '$suite' (bookworm or trixie)" >&2; exit 2;; esac

here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../containers.conf}
mirror=${OCPIZZA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
image=localhost/ocpizza-base:$suite
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,ca-certificates,curl,openssh-server,gnupg,locales

# Extra CA certificates the host trusts (corporate TLS proxies): the image
# trusts them too, so apt, pip and git over https work inside the hosts.
shopt -s nullglob
extra_cas=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob

recipe=$( { cat "$0"; echo "$suite $mirror $packages"; for f in "${extra_cas[@]}"; do cat "$f"; done; } | sha256sum | cut -c1-16)

current=$(podman image inspect --format '{{ index .Labels "org.ocpizza.recipe" }}' "$image" 2>/dev/null || true)
if [[ "$current" == "$recipe" ]]; then
    echo "image $image is up to date (recipe $recipe)"
    exit 0
fi

echo "building $image (recipe $recipe) from $mirror"
work=$(mktemp -d /var/tmp/ocpizza-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
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
chroot "$rootfs" apt-get update -qq >/dev/null
chroot "$rootfs" apt-get clean

tar -C "$rootfs" -c . | podman import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    --change "LABEL org.ocpizza.recipe=$recipe" \
    --change "LABEL org.ocpizza.suite=$suite" \
    - "$image" >/dev/null
echo "built $image"
