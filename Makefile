# Two entry points: `make demo` and `make test`. Both create .venv and install what they need:
# `make demo` the core dependencies only (the demo reads bundled embeddings: numpy, scipy, pyarrow, typer, rich,
# jinja2); `make test` adds the test extras, the embedders' runtimes, dask, torch (CPU) and triton.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.installed-core
FULL := $(VENV)/.installed-test

.PHONY: demo test lint fuzz clean

$(CORE): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(CORE)

$(FULL): $(CORE)
	$(BIN)/python -m pip install -q -e '.[test,sface,onnx,dlib,dask]'
	# torch (CPU build) for the torch backend's tests; this machine kind keeps that wheel on disk
	$(BIN)/python -m pip install -q torch==2.13.0 || echo "torch not installed: torch tests will be skipped"
	# triton for the fused kernel's tests, run in Triton's interpreter on the CPU (286 MB wheel, ~1 GB installed;
	# no dependencies, and --no-deps so that pip never replaces the CPU torch)
	$(BIN)/python -m pip install -q --no-deps triton==3.9.0 || echo "triton not installed: fused-kernel tests will be skipped"
	touch $(FULL)

demo: $(CORE)
	$(BIN)/python -m faceaudit.demo

# the suite, including the doctests of the public API (tests/test_doctests.py)
test: $(FULL)
	$(BIN)/python -m pytest -q

# a longer fuzzing run of the readers and the CLI (bench/RESULTS.md reports one); `make test` runs a bounded one
fuzz: $(FULL)
	$(BIN)/python bench/fuzz_run.py --minutes 10 --examples 1500

lint: $(FULL)
	$(BIN)/ruff check src tests bench tools

clean:
	rm -rf $(VENV) build dist src/*.egg-info
