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

.PHONY: help setup lint unit molecule test demo lab lab-destroy site verify deploy \
        start stop restart status backup restore bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

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

clean: ## Remove caches (not the lab, not .venv)
	rm -rf .ansible/facts .ansible/tmp .pytest_cache .ruff_cache
