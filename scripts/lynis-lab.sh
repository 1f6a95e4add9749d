#!/usr/bin/env bash
# lynis (Debian's package, installed by role common with its profile) on every
# running lab host whose container name starts with PREFIX, one after the
# other; prints each host's hardening index (docs/security.md, "Hardening
# measured"). Read-only apart from lynis's own report and log on each host.
#   scripts/lynis-lab.sh                 the lab of make demo (ocpizza-)
#   scripts/lynis-lab.sh ocpizza-plat-   the HA lab make test's platform run keeps
#                                        with OCPIZZA_PLATFORM_KEEP=1
set -euo pipefail
prefix=${1:-ocpizza-}
mapfile -t hosts < <(podman ps --format '{{.Names}}' | grep "^${prefix}" | sort)
((${#hosts[@]})) || { echo "lynis-lab: no running container named ${prefix}*" >&2; exit 1; }
for c in "${hosts[@]}"; do
    start=$SECONDS
    podman exec "$c" sh -c 'lynis audit system --quick --no-colors > /var/log/lynis-lab.txt 2>&1'
    index=$(podman exec "$c" sh -c "grep '^hardening_index=' /var/log/lynis-report.dat | cut -d= -f2")
    printf '%-24s hardening index %s (%d s)\n' "$c" "$index" $((SECONDS - start))
done
