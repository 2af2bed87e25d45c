# Two entry points: `make run` (a local sweep on the quickstart) and `make test` (everything).
# Both create the virtual environment first; nothing else needs installing by hand.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit tools images clean gpu-check

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(STAMP)
	$(BIN)/lrsweep run manifests/examples/quickstart.yaml --out out/quickstart --overwrite

tools:
	.ci/install-tools

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Both Dockerfile targets, built with podman on bases made locally (no registry needed;
# root, podman, runc and debootstrap: `make tools`). `make test` builds them too, in its
# image tests; what is built already is reused.
images: $(STAMP) tools
	$(PY) -m tests.images.build

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# Two workers: most of the suite waits on trial processes. Tests that share a costly session
# fixture run on one worker (tests/conftest.py), so each fixture is built once.
test: $(STAMP) tools lint
	$(BIN)/pytest -n 2 --dist loadgroup

# Where a GPU is at hand: the trainer and a local sweep on CUDA next to the CPU (skips, exit 0,
# without CUDA). Records benchmarks/results/gpu-check.json.
gpu-check: $(STAMP)
	$(PY) -m benchmarks.gpu_check

clean:
	rm -rf $(VENV) .tools out .mypy_cache .pytest_cache .ruff_cache
