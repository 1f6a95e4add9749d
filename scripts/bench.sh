#!/usr/bin/env bash
# make bench: the project's benchmarks, not part of make test.
#
#   make bench                 both, speed first
#   make bench BENCH=speed     issue 17's speed table, on the small lab of this
#                              tree (scripts/bench_speed.py; creates it with
#                              make demo's steps when it is not there)
#   make bench BENCH=backup    backup/restore on a 500 MB database (scripts/bench-backup.sh)
#
# BENCH_ARGS passes options to scripts/bench_speed.py, e.g.
#   make bench BENCH=speed BENCH_ARGS="--only deploy --compare .ansible/logs/bench-speed.before.json"
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH CONTAINERS_CONF=$PWD/lab/containers.conf ANSIBLE_CONFIG=$PWD/ansible.cfg

speed() {
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
    python3 scripts/bench_speed.py ${BENCH_ARGS:-}
}
case ${BENCH:-all} in
speed) speed ;;
backup) bash scripts/bench-backup.sh ;;
all)
    rc=0
    speed || rc=$?
    bash scripts/bench-backup.sh || rc=$?
    exit "$rc"
    ;;
*) echo "bench: BENCH must be speed, backup or empty (both), not '$BENCH'" >&2; exit 2 ;;
esac
