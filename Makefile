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

.PHONY: help setup lint unit molecule test demo lab lab-destroy site verify deploy update-system \
        update-app start stop restart status backup backups restore bench clean

help: ## List the targets
	@grep -E '^[a-z -]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-26s %s\n", $$1, $$2}'

setup: ## Install the control-node toolchain, lab packages and images (idempotent)
	@bash scripts/setup.sh

lint: setup ## ansible-lint (production profile), ruff, syntax-check of every playbook
	@bash scripts/lint.sh

unit: setup ## pytest of the Python plugins
	@pytest -q tests

molecule: setup ## Every molecule scenario (or SCENARIO=name)
	@bash scripts/molecule.sh $(SCENARIO)

test: ## Everything: setup, lint, unit tests, app tests, every molecule scenario
	@bash scripts/test-all.sh

lab: setup ## Create the local lab (playbooks/lab.yml)
	@$(PLAYBOOK) playbooks/lab.yml

lab-destroy: setup ## Remove the local lab
	@$(PLAYBOOK) playbooks/lab-destroy.yml

demo: setup ## Create the lab, deploy the platform, verify it, say where it answers
	@bash scripts/demo.sh

site: setup ## Deploy everything (playbooks/site.yml) on INVENTORY
	@$(PLAYBOOK) -i $(INVENTORY) playbooks/site.yml

verify: setup ## Check the site, admin, healthz, gunicorn and MySQL (playbooks/verify.yml)
	@$(PLAYBOOK) -i $(INVENTORY) playbooks/verify.yml

deploy: setup ## Deploy the app's production branch (playbooks/deploy.yml)
	@$(PLAYBOOK) -i $(INVENTORY) playbooks/deploy.yml

update-system: setup ## apt update + upgrade, one host at a time (update.yml --tags system)
	@$(PLAYBOOK) -i $(INVENTORY) playbooks/update.yml --tags system

update-app: setup ## Fetch and deploy the production branch (update.yml --tags app)
	@$(PLAYBOOK) -i $(INVENTORY) playbooks/update.yml --tags app

start stop restart status: setup ## Runbook §5, e.g. make stop COMPONENT=gunicorn
	@$(PLAYBOOK) -i $(INVENTORY) playbooks/$@.yml -e component=$(COMPONENT)

backup: setup ## Back up oc_pizza now (playbooks/backup.yml)
	@$(PLAYBOOK) -i $(INVENTORY) playbooks/backup.yml

backups: setup ## List the backups of each db host
	@$(PLAYBOOK) -i $(INVENTORY) playbooks/backups-list.yml

restore: setup ## Restore a backup: make restore BACKUP=<id or path>
	@$(PLAYBOOK) -i $(INVENTORY) playbooks/restore.yml -e backup=$(BACKUP)

bench: setup ## Backup/restore benchmark on a 500 MB database (not part of make test)
	@bash scripts/bench-backup.sh

clean: ## Remove caches (not the lab, not .venv)
	rm -rf .ansible/facts .ansible/tmp .pytest_cache .ruff_cache
