#!/usr/bin/env bash
# make demo: create the local lab, deploy the platform on it, verify it, and
# say where it answers. Safe to run again: a second run changes nothing.
# LAB=ha (make demo LAB=ha) builds production's shape instead of the small
# lab: a load balancer (HAProxy, publishing the site), two web servers, two
# app servers, the database and the forge.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH CONTAINERS_CONF=$PWD/lab/containers.conf ANSIBLE_CONFIG=$PWD/ansible.cfg

# The lab's topology: small (default) or ha. The lab's settings and the
# summary below read it from OCPIZZA_LAB_TOPOLOGY.
export OCPIZZA_LAB_TOPOLOGY="${LAB:-${OCPIZZA_LAB_TOPOLOGY:-small}}"
echo "==> lab, topology ${OCPIZZA_LAB_TOPOLOGY} (playbooks/lab.yml)"
ansible-playbook playbooks/lab.yml -e lab_topology="$OCPIZZA_LAB_TOPOLOGY"
echo "==> deploy (playbooks/site.yml)"
ansible-playbook -i inventories/lab playbooks/site.yml
echo "==> verify (playbooks/verify.yml)"
ansible-playbook -i inventories/lab playbooks/verify.yml
echo "==> OC Pizza is running in the lab"
# The lab role's summary, from the lab's settings (inventories/lab/group_vars/all/lab.yml).
ansible -i inventories/lab localhost --playbook-dir playbooks \
    -m ansible.builtin.include_role -a 'name=lab tasks_from=summary'
