# OC Pizza infrastructure. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PLAYBOOK := ansible-playbook
# One molecule scenario: make molecule SCENARIO=mysql
SCENARIO ?=
# Inventory for the runbook targets: make site INVENTORY=inventories/production
INVENTORY ?= inventories/lab
# Component of start/stop/restart/status: mysql, gunicorn, nginx or all.
COMPONENT ?= all
# Backup to restore: make restore BACKUP=<id or path>
BACKUP ?=
# Lab shape of make demo / make lab: small (default, one host per tier) or ha.
LAB ?=
# Environment deprovision removes (it must match the inventory's): make deprovision CONFIRM=staging
CONFIRM ?=
# Extra ansible-playbook arguments of the runbook targets, e.g.
#   make site INVENTORY=inventories/production ANSIBLE_ARGS="--check --diff"
ANSIBLE_ARGS ?=
# The vault password file, read by ansible-playbook itself (Ansible's own
# variable, so a plain ansible-playbook reads it too when it is exported):
#   make deploy INVENTORY=inventories/production ANSIBLE_VAULT_PASSWORD_FILE=~/.ocpizza-vault-pass
# Without it, ANSIBLE_ARGS=--ask-vault-pass prompts for the password.
ifdef ANSIBLE_VAULT_PASSWORD_FILE
export ANSIBLE_VAULT_PASSWORD_FILE
endif
RUNBOOK := $(PLAYBOOK) -i $(INVENTORY) $(ANSIBLE_ARGS)

.PHONY: help setup toolchain lint unit molecule test test-full demo lab lab-destroy site verify deploy \
        update-system update-app start stop restart status backup backups drill restore provision deprovision \
        bench clean

help: ## List the targets
	@grep -E '^[a-z -]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-26s %s\n", $$1, $$2}'

setup: ## Install the control-node toolchain, lab packages and images (idempotent; root, for podman)
	@bash scripts/setup.sh

toolchain: ## Install the control-node toolchain only (.venv, collections): no root, no podman
	@OCPIZZA_TOOLCHAIN_QUIET=1 bash scripts/toolchain.sh

lint: setup ## ansible-lint (production profile), ruff, syntax-check of every playbook
	@bash scripts/lint.sh

unit: setup ## pytest of the Python plugins
	@pytest -q tests

molecule: setup ## Every molecule scenario (or SCENARIO=name)
	@bash scripts/molecule.sh $(SCENARIO)

test: ## Everything: setup, lint, unit tests, app tests, the platform run, every molecule scenario
	@bash scripts/test-all.sh

test-full: ## make test, plus what is too slow for CI (the platform run on Debian 13, ...)
	@bash scripts/test-all.sh --full

lab: setup ## Create the local lab (playbooks/lab.yml; LAB=ha for the production shape)
	@$(PLAYBOOK) playbooks/lab.yml $(if $(LAB),-e lab_topology=$(LAB))

lab-destroy: setup ## Remove the local lab
	@$(PLAYBOOK) playbooks/lab-destroy.yml

# make demo's setup builds only the lab's image (Debian 12), not the role scenarios' others.
demo: ## Create the lab, deploy the platform, verify it, say where it answers (LAB=ha: HA lab)
	@OCPIZZA_LAB_SUITES=$${OCPIZZA_LAB_SUITES:-bookworm} bash scripts/setup.sh
	@LAB=$(LAB) bash scripts/demo.sh

# The runbook: control-node toolchain only (no root, podman or lab images),
# on INVENTORY (the lab by default).
site: toolchain ## Deploy everything (playbooks/site.yml) on INVENTORY
	@$(RUNBOOK) playbooks/site.yml

verify: toolchain ## Check the site, admin, healthz, gunicorn and MySQL (playbooks/verify.yml)
	@$(RUNBOOK) playbooks/verify.yml

deploy: toolchain ## Deploy the app's production branch (playbooks/deploy.yml)
	@$(RUNBOOK) playbooks/deploy.yml

# Release of make rollback: an id of the release list (empty: the previous
# good release); ANSIBLE_ARGS="-e allow_bad_release=true" lands on a bad one.
RELEASE ?=
.PHONY: rollback
rollback: toolchain ## Back to the previous good release, or RELEASE=<id> (playbooks/rollback.yml)
	@$(RUNBOOK) playbooks/rollback.yml $(if $(RELEASE),-e release=$(RELEASE))

update-system: toolchain ## apt update + upgrade, one host at a time (update.yml --tags system)
	@$(RUNBOOK) playbooks/update.yml --tags system

update-app: toolchain ## Fetch and deploy the production branch (update.yml --tags app)
	@$(RUNBOOK) playbooks/update.yml --tags app

start stop restart status: toolchain ## Runbook §5, e.g. make stop COMPONENT=gunicorn
	@$(RUNBOOK) playbooks/$@.yml -e component=$(COMPONENT)

backup: toolchain ## Back up oc_pizza now (playbooks/backup.yml)
	@$(RUNBOOK) playbooks/backup.yml

backups: toolchain ## List the backups of each db host
	@$(RUNBOOK) playbooks/backups-list.yml

drill: toolchain ## Restore drill: newest backup + binary logs into a scratch database, checked, dropped (playbooks/drill.yml)
	@$(RUNBOOK) playbooks/drill.yml

restore: toolchain ## Restore a backup: make restore BACKUP=<id or path>
	@$(RUNBOOK) playbooks/restore.yml -e backup=$(BACKUP)

provision: toolchain ## Create or reconcile the droplets of INVENTORY on DigitalOcean (provision.yml)
	@$(RUNBOOK) playbooks/provision.yml

deprovision: toolchain ## Destroy them: make deprovision INVENTORY=inventories/staging CONFIRM=staging
	@$(RUNBOOK) playbooks/deprovision.yml -e confirm_destroy=$(CONFIRM)

bench: setup ## Benchmarks, not in make test: BENCH=speed (issue 17's table), BENCH=backup, or both (default)
	@BENCH=$(BENCH) bash scripts/bench.sh

clean: ## Remove caches (not the lab, not .venv)
	rm -rf .ansible/facts .ansible/tmp .pytest_cache .ruff_cache

# Secret of make rotate-secrets: db_app_password, secret_key or deploy_key, or
# several comma-separated (SECRET=db_app_password,secret_key,deploy_key).
.PHONY: rotate-secrets
rotate-secrets: toolchain ## Roll a secret out from the vault: make rotate-secrets SECRET=db_app_password|secret_key|deploy_key
	@$(RUNBOOK) playbooks/rotate-secrets.yml -e secret=$(SECRET)

.PHONY: ee
ee: setup ## Build the execution environment image for AWX and ansible-navigator (execution-environment.yml)
	@bash scripts/ee.sh
