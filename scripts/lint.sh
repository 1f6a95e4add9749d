#!/usr/bin/env bash
# make lint: ansible-lint (production profile, offline), ruff, and a syntax
# check of every playbook. Exits non-zero on the first tool that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> ansible-lint"
ansible-lint --offline -q
echo "==> ruff"
ruff check .
echo "==> syntax-check"
for pb in playbooks/*.yml; do
    ansible-playbook --syntax-check -i localhost, "$pb" >/dev/null || { echo "syntax-check failed: $pb" >&2; exit 1; }
    echo "ok  $pb"
done
