#!/usr/bin/env bash
# The end of `make demo`: where the lab's site answers and how to log in.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${OCPIZZA_LAB_HTTPS_PORT:-8443}
lab=${OCPIZZA_LAB_DIR:-$PWD/.lab}
cat <<MSG

==> OC Pizza is running in the lab.
    Site:   https://www.ocpizza.com:$port/        (admin: https://www.ocpizza.com:$port/admin/)
    Try:    curl --cacert .lab/ca.crt --resolve www.ocpizza.com:$port:127.0.0.1 https://www.ocpizza.com:$port/healthz
    Admin:  user admin, password in .lab/secrets/django_admin_password ($(cat "$lab/secrets/django_admin_password" 2>/dev/null || echo 'not generated yet'))
    A browser needs www.ocpizza.com → 127.0.0.1 (/etc/hosts) and .lab/ca.crt trusted.
    Runbook: make status | make stop COMPONENT=gunicorn | make deploy | make backup | make verify
MSG
