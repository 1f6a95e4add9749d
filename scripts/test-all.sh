#!/usr/bin/env bash
# make test: every check the project has, in order. Each step runs even when
# an earlier one failed, and the last lines are a table of each step's wall
# time and the sum.
#   scripts/test-all.sh           what CI runs (make test, <= 40 min on 2 cores)
#   scripts/test-all.sh --full    plus what is too slow for CI (make test-full):
#                                 the platform run and role common's scenario
#                                 again on Debian 13, the
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
# The machine's busy share of its CPU time (from /proc/stat) since a mark: tells
# whether a step waits (room for running something beside it) or computes.
cpu_mark() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
cpu_busy() {
    local -a a b
    read -r -a a <<<"$1"; read -r -a b <<<"$(cpu_mark)"
    awk -v busy=$((b[0] - a[0])) -v all=$((b[1] - a[1])) 'BEGIN{printf "cpu %d%%", all ? 100 * busy / all : 0}'
}
step() {
    local name=$1; shift
    local start=$SECONDS cpu
    cpu=$(cpu_mark)
    echo; echo "######## $name"
    if "$@"; then passed=$((passed + 1)); report+=("ok    $name ($((SECONDS - start)) s, $(cpu_busy "$cpu"))")
    else failed=$((failed + 1)); report+=("FAIL  $name ($((SECONDS - start)) s, $(cpu_busy "$cpu"))"); fi
}
# The shared platform run: one HA lab converged once from inventories/production
# (tests/platform/conftest.py), every platform-level test module on it.
platform() {
    OCPIZZA_PLATFORM=1 pytest -q -p no:cacheprovider --durations=25 tests/platform
}

# The platform run beside everything else, from the start: most of its time
# is waiting (health checks, drains, the load client's fixed durations,
# reboots) or one core's work (one Ansible run), and lint and the unit tests
# leave about a third of the machine idle, the role scenarios fill the rest.
# It is the longest step, so it starts first. Its output is printed once
# everything else is done; its line in the table is its own wall time.
# OCPIZZA_PLATFORM_BESIDE=0 runs it alone, after the unit tests.
platform_beside=${OCPIZZA_PLATFORM_BESIDE:-1}
platform_job() {
    local t=$SECONDS cpu r
    cpu=$(cpu_mark)
    if platform >.ansible/logs/step-platform.out 2>&1; then r=ok; else r=FAIL; fi
    printf '%-5s platform (%d s, %s)\n' "$r" $((SECONDS - t)) "$(cpu_busy "$cpu")" >.ansible/logs/step-platform.result
}
mkdir -p .ansible/logs
rm -f .ansible/logs/step-platform.result
if ((platform_beside)); then
    platform_job &
    platform_pid=$!
fi

step lint bash scripts/lint.sh
step unit pytest -q tests
step app-tests bash examples/ocpizza/scripts/run-tests.sh
((platform_beside)) || step platform platform

# The role scenarios, two at a time: one scenario keeps about one core busy
# (Ansible runs a task on one or two hosts, then waits for them), so two
# lanes use the machine's two cores. Longest first, so that the lanes end
# together; each scenario's own wall time is its line in the table.
# OCPIZZA_MOLECULE_LANES=1 runs them one after the other.
molecule_lanes() {
    local lanes=${OCPIZZA_MOLECULE_LANES:-2} s start=$SECONDS cpu p
    local -a pids=()
    cpu=$(cpu_mark)
    local -a order=()
    for s in app backup nginx mysql common; do [[ -f molecule/$s/molecule.yml ]] && order+=("$s"); done
    for f in molecule/*/molecule.yml; do
        s=$(basename "$(dirname "$f")")
        [[ " ${order[*]} " == *" $s "* ]] || order+=("$s")
    done
    mkdir -p .ansible/logs
    for s in "${order[@]}"; do
        # A lane is free when fewer than $lanes scenarios run (the platform job,
        # when it runs beside, is no lane).
        while :; do
            local -a running=()
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running+=("$p"); done
            pids=("${running[@]}")
            ((${#pids[@]} < lanes)) && break
            sleep 2
        done
        echo "######## molecule-$s (started at $((SECONDS - start)) s of the role scenarios)"
        (
            t=$SECONDS
            if bash scripts/molecule.sh "$s" >".ansible/logs/step-molecule-$s.out" 2>&1; then r=ok; else r=FAIL; fi
            printf '%-5s molecule-%s (%d s)\n' "$r" "$s" $((SECONDS - t)) >".ansible/logs/step-molecule-$s.result"
        ) &
        pids+=($!)
        # molecule's prerun (ansible-compat's collection cache) of two lanes never overlaps.
        sleep 15
    done
    for p in "${pids[@]}"; do wait "$p"; done
    for s in "${order[@]}"; do
        echo; echo "######## molecule-$s"; cat ".ansible/logs/step-molecule-$s.out"
        line=$(cat ".ansible/logs/step-molecule-$s.result" 2>/dev/null || echo "FAIL  molecule-$s (no result)")
        report+=("$line")
        if [[ $line == ok* ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
    report+=("      role scenarios, ${lanes} at a time: $((SECONDS - start)) s, $(cpu_busy "$cpu")")
}
molecule_lanes
if ((platform_beside)); then
    wait "$platform_pid"
    echo; echo "######## platform (beside the role scenarios)"; cat .ansible/logs/step-platform.out
    line=$(cat .ansible/logs/step-platform.result 2>/dev/null || echo "FAIL  platform (no result)")
    report+=("$line")
    if [[ $line == ok* ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi
if $full; then
    # Role common's scenario on Debian 13 (make test runs it on Debian 12).
    step molecule-common-trixie env OCPIZZA_MOL_SUITE=trixie bash scripts/molecule.sh common
    step platform-trixie env OCPIZZA_LAB_SUITE=trixie OCPIZZA_PLATFORM_DIR="$PWD/.ansible/platform-lab-trixie" \
        bash -c "$(declare -f platform); platform"
    step relab env OCPIZZA_RELAB=1 pytest -q -p no:cacheprovider tests/relab
    step ee bash scripts/ee-test.sh
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
