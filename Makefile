# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Each installs what it needs itself, so a fresh clone needs nothing done by hand.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit bench clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) system-deps
	$(BIN)/pytest -q

# Debian packages the tests need, installed with apt-get only when missing (as root or through sudo):
# PostgreSQL server binaries for the call-record store tests (a throwaway server on 127.0.0.1),
# espeak-ng, the offline text-to-speech engine (speech tests, and every real call without a TTS endpoint),
# the SIP channel's real peers: sipp, baresip and dumpcap (tshark) for captures, Kamailio for the
# worker-pool test (deploy/kamailio), and Chromium for the dashboard's browser tests (Playwright drives
# Debian's build; its own browser download cannot work here).
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) $(shell command -v initdb 2>/dev/null))
APT_MISSING := $(if $(PG_INITDB),,postgresql) $(if $(shell command -v espeak-ng 2>/dev/null),,espeak-ng) \
	$(if $(shell command -v sipp 2>/dev/null),,sip-tester) \
	$(if $(shell command -v baresip 2>/dev/null),,baresip-core) \
	$(if $(shell command -v dumpcap 2>/dev/null),,tshark) \
	$(if $(shell command -v kamailio 2>/dev/null),,kamailio) \
	$(if $(wildcard /usr/bin/chromium),,chromium)
system-deps:
ifneq ($(strip $(APT_MISSING)),)
	@echo "installing Debian packages: $(strip $(APT_MISSING))"
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
	    $(strip $(APT_MISSING)) >/dev/null
else
	@true
endif

test: lint typecheck unit

# llama.cpp's native build crashes on CPUs with AMX: build for a portable x86-64 feature set.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
DEMO_STAMP := $(VENV)/.installed-demo

$(DEMO_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install -q -e '.[dev,demo]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/callgate demo

# Speed figures (docs/benchmarks.md). vs_pipecat installs Pipecat into .bench-venv/ (git-ignored) once.
bench: $(STAMP)
	$(BIN)/python benchmarks/swaig_eval.py
	$(BIN)/python benchmarks/turn_overhead.py
	$(BIN)/python benchmarks/vs_pipecat.py

clean:
	rm -rf $(VENV) .bench-venv build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
