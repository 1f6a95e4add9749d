#!/usr/bin/env bash
# Install promtool (the alert rules' test runner) on the control node, without
# Debian's prometheus package: installing that package would start a
# Prometheus daemon here. The package's .deb is fetched with `apt-get download`
# into a cache directory and only /usr/bin/promtool is extracted from it.
#
#   bash scripts/promtool.sh             installs into .venv/bin (make setup)
#   OCPIZZA_PROMTOOL_DIR=DIR bash scripts/promtool.sh
#
# Idempotent: nothing is fetched when the promtool in place is the candidate
# version of the package. No root needed (apt-get download writes to the
# current directory; the apt lists must exist, which make setup ensures).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dest=${OCPIZZA_PROMTOOL_DIR:-$root/.venv/bin}
cache=${OCPIZZA_PROMTOOL_CACHE:-$root/.ansible/tools/cache}
package=prometheus

version=$(apt-cache policy "$package" | awk '/Candidate:/ {print $2}')
if [[ -z $version || $version == "(none)" ]]; then
    echo "promtool.sh: apt knows no candidate for '$package' (run apt-get update)" >&2
    exit 1
fi
stamp=$dest/.promtool-version
if [[ -x $dest/promtool && -f $stamp && $(cat "$stamp") == "$version" ]]; then
    exit 0
fi
mkdir -p "$cache" "$dest"
deb=$(find "$cache" -maxdepth 1 -name "${package}_${version//:/%3a}_*.deb" -print -quit)
if [[ -z $deb ]]; then
    sandbox=(); [[ $EUID -ne 0 ]] || sandbox=(-o APT::Sandbox::User=root)
    (cd "$cache" && apt-get download -q "${sandbox[@]}" "$package=$version" >/dev/null)
    deb=$(find "$cache" -maxdepth 1 -name "${package}_${version//:/%3a}_*.deb" -print -quit)
fi
[[ -n $deb ]] || { echo "promtool.sh: apt-get download $package=$version left no .deb in $cache" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
install -m 0755 "$tmp/usr/bin/promtool" "$dest/promtool.new"
mv -f "$dest/promtool.new" "$dest/promtool"
printf '%s\n' "$version" >"$stamp"
echo "promtool.sh: promtool $version installed in $dest"
