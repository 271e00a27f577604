# aovpn-lab. Every target first runs the idempotent setup (Debian packages, .venv).
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTEST  := $(BIN)/python -m pytest
LAB     := $(BIN)/aovpn-lab

.PHONY: setup conformance test unit lab-up lab-down lab-status bench soak lint clean

setup:
	@scripts/setup.sh

# Lab up, the conformance suite, report in reports/latest/, lab down (also when the suite fails).
conformance: setup
	@$(LAB) lab up
	@rc=0; $(LAB) run || rc=$$?; $(LAB) lab down; exit $$rc

# The project's own tests: every module's doctests, unit tests, then lab-backed integration tests (root).
test: setup
	@$(PYTEST) --doctest-modules src/aovpn_lab tests/unit tests/integration

unit: setup
	@$(PYTEST) --doctest-modules src/aovpn_lab tests/unit

lab-up: setup
	@$(LAB) lab up

lab-down: setup
	@$(LAB) lab down

lab-status: setup
	@$(LAB) lab status

# Speed figures (lab up/down, per-cell times); printed, never asserted.
bench: setup
	@$(BIN)/python -m aovpn_lab.bench

# Repeatability: the default matrix 5 times on one lab; prints every cell whose verdict changed
# between runs (expected: none) and each cell's run-to-run time spread.
soak: setup
	@$(LAB) lab up
	@rc=0; $(BIN)/python -m aovpn_lab.soak --runs $${RUNS:-5} || rc=$$?; $(LAB) lab down; exit $$rc

lint: setup
	@$(BIN)/ruff check src tests playbooks/library playbooks/module_utils playbooks/action_plugins

clean:
	rm -rf reports/2* reports/latest .pytest_cache
