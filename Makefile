# devagent: `make demo` provisions a demo environment; `make test` runs the whole suite.
# Both install what they need (Debian packages, the Python environment, a running Docker Engine, the offline
# base image) and work on a fresh Debian 12 machine as root.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch is only for the tests' real torch probe (the CLI and the agent never import it); 2.13.0 is the CPU wheel.
TORCH  ?= torch==2.13.0

.PHONY: help deps venv docker base-image test-images notebook-wheels test-users test test-fast lint demo demo-clean \
	bench preview-check mutation clean

help:
	@echo "make demo        provision the 'demo' environment, log in through its alias, show the notebook"
	@echo "make test        run the whole test suite (installs what it needs)"
	@echo "make test-fast   unit tests only (no Docker)"
	@echo "make base-image  build the offline base image devagent-base:bookworm (test-images: also :trixie)"
	@echo "make lint        ruff, mypy and the import contracts"
	@echo "make bench       run the benchmarks"
	@echo "make mutation    mutation testing of the pure core (slow; MODULES=devagent/core/x.py for some)"
	@echo "make preview-check  render the notebook as VS Code's preview in Chromium at 600/1200 px (needs node, npm)"

deps:
	@bash scripts/install-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]' '$(TORCH)'
	touch $@

venv: deps $(VENV)/.installed

docker: deps
	@bash scripts/ensure-docker.sh

# The venv's pip collects the torch wheels (Debian's own python3 has no pip module).
base-image: docker venv
	@PYTHON=$(CURDIR)/$(PY) bash scripts/build-base-image.sh

# The tests also need devagent-base:trixie (OpenSSH 10, no torch), for what a newer sshd does differently.
test-images: base-image
	@DEVAGENT_BASE_SUITE=trixie TORCH_VERSION=none bash scripts/build-base-image.sh

# Jupyter Server's and TensorBoard's wheels, for the offline tests of `devagent jupyter` and `devagent tensorboard`
# (installed into a venv inside one test environment, not into the base image: scripts/collect-notebook-wheels.sh).
notebook-wheels: base-image
	@PYTHON=$(CURDIR)/$(PY) bash scripts/collect-notebook-wheels.sh

# The laptop -> server tests log in to a test sshd as these server users (scripts/test-server-users.sh).
test-users: deps
	@bash scripts/test-server-users.sh

test: venv test-images notebook-wheels test-users lint
	$(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not docker"

# ruff, mypy, and the architecture's import contracts (pyproject's [tool.importlinter]); `make test` runs it first.
lint: venv
	$(PY) -m pip install -q -e '.[lint]'
	$(VENV)/bin/ruff check devagent tests benchmarks scripts
	$(VENV)/bin/mypy devagent tests/control/fakes.py  # the fake engine must satisfy the engine Protocol
	$(VENV)/bin/lint-imports --no-cache

demo: venv base-image
	@bash scripts/demo.sh

demo-clean: venv
	@DEVAGENT_HOME=$(CURDIR)/build/demo/home DEVAGENT_SSH_CONFIG=$(CURDIR)/build/demo/ssh_config \
		$(VENV)/bin/devagent down demo || true

bench: venv base-image
	$(PY) benchmarks/up_bench.py
	$(PY) benchmarks/agent_bench.py --quick
	$(PY) benchmarks/run_bench.py --quick
	$(PY) benchmarks/glob_bench.py
	$(PY) benchmarks/gpus_bench.py

# Not part of `test`: it needs node, npm (markdown-it) and chromium.
preview-check: venv
	PYTHON=$(CURDIR)/$(PY) bash scripts/preview-check.sh

# Not part of `test`: mutmut over devagent/core/, module by module against each module's own test files, niced
# (scripts/mutation.py). Prints the score per module and every surviving mutant; results are cached in build/.
mutation: venv
	$(PY) -m pip install -q -e '.[mutation]'
	nice -n 10 $(PY) scripts/mutation.py $(MODULES)

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
