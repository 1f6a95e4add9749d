#!/usr/bin/env bash
# Run molecule scenarios one after the other: all of them, or those named.
#   scripts/molecule.sh [scenario ...]
set -uo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_NOCOLOR=1 NO_COLOR=1 PY_COLORS=0
mkdir -p .ansible/logs
if (($#)); then scenarios=("$@"); else
    mapfile -t scenarios < <(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)
fi
failed=()
for s in "${scenarios[@]}"; do
    log=.ansible/logs/molecule-$s.log
    start=$SECONDS
    echo "==> molecule test -s $s (log: $log)"
    if molecule test -s "$s" >"$log" 2>&1; then
        echo "ok    $s ($((SECONDS - start)) s)"
    else
        echo "FAIL  $s ($((SECONDS - start)) s); last lines of $log:"
        tail -n 40 "$log" | sed 's/^/    /'
        failed+=("$s")
    fi
done
((${#failed[@]} == 0)) || { echo "failed scenarios: ${failed[*]}"; exit 1; }
