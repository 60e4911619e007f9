# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edgedeploy-installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build on local disk. Anything later sees it satisfied.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# models written by others for the outside-models tests: their wheels pin old torch / pull torchvision,
	# which cannot load beside this CPU torch, so they come without their dependencies (see tests/outside)
	$(PY) -m pip install -q --no-deps 'timm==1.0.31' 'facenet-pytorch==2.6.0'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgedeploy demo

# `make test`: everything but the end-to-end runs marked slow (well under 15 minutes on 2 cores);
# `make test-slow`: those (CI runs both, see .ci/run).
test: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -n 2 -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build .pytest_cache
