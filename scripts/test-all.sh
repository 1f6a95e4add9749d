#!/usr/bin/env bash
# make test: every check the project has, in order. Each step runs even when
# an earlier one failed, and the last line sums them up.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH

bash scripts/setup.sh || { echo "test: setup failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0; report=()
step() {
    local name=$1; shift
    local start=$SECONDS
    echo; echo "######## $name"
    if "$@"; then passed=$((passed + 1)); report+=("ok    $name ($((SECONDS - start)) s)")
    else failed=$((failed + 1)); report+=("FAIL  $name ($((SECONDS - start)) s)"); fi
}

step lint bash scripts/lint.sh
step unit pytest -q tests
step app-tests bash examples/ocpizza/scripts/run-tests.sh
for f in molecule/*/molecule.yml; do
    s=$(basename "$(dirname "$f")")
    step "molecule-$s" bash scripts/molecule.sh "$s"
done

echo; printf '%s\n' "${report[@]}"
echo "summary: $passed passed, $failed failed"
((failed == 0))
