#!/usr/bin/env bash
# make demo: create the local lab, deploy the platform on it, verify it, and
# say where it answers. Safe to run again: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH CONTAINERS_CONF=$PWD/lab/containers.conf ANSIBLE_CONFIG=$PWD/ansible.cfg

echo "==> lab (playbooks/lab.yml)"
ansible-playbook playbooks/lab.yml
echo "==> deploy (playbooks/site.yml)"
ansible-playbook -i inventories/lab playbooks/site.yml
if [[ -f playbooks/verify.yml ]]; then
    echo "==> verify (playbooks/verify.yml)"
    ansible-playbook -i inventories/lab playbooks/verify.yml
fi
if [[ -f scripts/demo-summary.sh ]]; then
    bash scripts/demo-summary.sh
else
    echo "==> lab ready: ssh -i .lab/id_ed25519 -o UserKnownHostsFile=.lab/known_hosts root@10.89.50.31"
fi
