#!/usr/bin/env bash
# make test: every check the project has, in order. Each step runs even when
# an earlier one failed, and the last lines are a table of each step's wall
# time and the sum.
#   scripts/test-all.sh           what CI runs (make test, <= 40 min on 2 cores)
#   scripts/test-all.sh --full    plus what is too slow for CI (make test-full):
#                                 the platform run again on Debian 13, the
#                                 lab switch between Debian 12 and 13, and the
#                                 tests marked `full` (OCPIZZA_FULL=1)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
full=false
[[ ${1:-} == --full ]] && full=true
# Tests marked `full` (pytest) run only here: too slow for make test's budget.
if $full; then export OCPIZZA_FULL=1; fi

bash scripts/setup.sh || { echo "test: setup failed"; echo "0 passed, 1 failed"; exit 1; }
# From here on, the apt cache's hits and misses are this run's (printed at the end).
apt_mark=$(date +%s)

passed=0; failed=0; report=(); begin=$SECONDS
step() {
    local name=$1; shift
    local start=$SECONDS
    echo; echo "######## $name"
    if "$@"; then passed=$((passed + 1)); report+=("ok    $name ($((SECONDS - start)) s)")
    else failed=$((failed + 1)); report+=("FAIL  $name ($((SECONDS - start)) s)"); fi
}
# The shared platform run: one HA lab converged once from inventories/production
# (tests/platform/conftest.py), every platform-level test module on it.
platform() {
    OCPIZZA_PLATFORM=1 pytest -q -p no:cacheprovider tests/platform
}

step lint bash scripts/lint.sh
step unit pytest -q tests
step app-tests bash examples/ocpizza/scripts/run-tests.sh
step platform platform
for f in molecule/*/molecule.yml; do
    s=$(basename "$(dirname "$f")")
    step "molecule-$s" bash scripts/molecule.sh "$s"
done
if $full; then
    step platform-trixie env OCPIZZA_LAB_SUITE=trixie OCPIZZA_PLATFORM_DIR="$PWD/.ansible/platform-lab-trixie" \
        bash -c "$(declare -f platform); platform"
    step relab env OCPIZZA_RELAB=1 pytest -q -p no:cacheprovider tests/relab
fi

echo
if [[ -r /var/log/apt-cacher-ng/apt-cacher.log ]]; then
    echo "apt cache during this run (scripts/apt-cache-stats.sh --since $apt_mark):"
    bash scripts/apt-cache-stats.sh --since "$apt_mark" || true
fi
echo; printf '%s\n' "${report[@]}"
total=$((SECONDS - begin))
echo "total: $((total / 60)) min $((total % 60)) s"
echo "summary: $passed passed, $failed failed"
((failed == 0))
