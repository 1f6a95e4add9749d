#!/usr/bin/env bash
# The execution environment, proven (make test-full runs it; 15 min 45 s
# on 2 cores under load, 12 min of it the small lab's converge):
#
#   scripts/ee-test.sh       make ee, then tests/ee with OCPIZZA_EE=1
#
# tests/ee/test_navigator.py builds a small lab of its own (prefix ocpizza-ee,
# 10.89.71.0/24, ports 28171/28571), converges it with site.yml, runs
# verify.yml and status.yml through ansible-navigator inside the EE, lists a
# fake DigitalOcean API's droplets with the inventory plugin from inside the
# EE, and removes the lab. OCPIZZA_EE_KEEP=1 keeps the lab afterwards,
# OCPIZZA_EE_REUSE=1 skips the converge of a kept one.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
bash scripts/ee.sh
OCPIZZA_EE=1 OCPIZZA_FULL=1 pytest -q -p no:cacheprovider tests/ee "$@"
