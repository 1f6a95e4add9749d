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
echo "==> verify (playbooks/verify.yml)"
ansible-playbook -i inventories/lab playbooks/verify.yml
echo "==> OC Pizza is running in the lab"
# The lab role's summary, from the lab's settings (inventories/lab/group_vars/all/lab.yml).
ansible -i inventories/lab localhost --playbook-dir playbooks \
    -m ansible.builtin.include_role -a 'name=lab tasks_from=summary'
