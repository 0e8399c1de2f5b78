# Two entry points: `make demo` and `make test`. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,sface,onnx,dlib,dask]'
	# torch (CPU build) for the torch backend's tests; this machine kind keeps that wheel on disk
	$(BIN)/python -m pip install -q torch==2.13.0 || echo "torch not installed: torch tests will be skipped"
	# triton for the fused kernel's tests, run in Triton's interpreter on the CPU (286 MB wheel, ~1 GB installed;
	# no dependencies, and --no-deps so that pip never replaces the CPU torch)
	$(BIN)/python -m pip install -q --no-deps triton==3.9.0 || echo "triton not installed: fused-kernel tests will be skipped"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m faceaudit.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info
