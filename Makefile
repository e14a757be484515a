# shmbus — one entry point for building, testing and measuring.
#
#   make demo    cross-process demo (producer + two subscribers)
#   make test    everything: Rust, loom, C, Python, CLI
#   make bench   benchmarks (results go to BENCHMARKS.md by hand)
#
# Each part of the project adds its targets from mk/*.mk and appends its test
# target to TEST_TARGETS.

SHELL := /bin/bash
CARGO ?= cargo
PREFIX ?= /usr/local
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python

TEST_TARGETS := test-rust test-loom lint

.PHONY: all build test test-rust test-loom lint demo bench fuzz soak install clean venv

all: build

build:
	$(CARGO) build --workspace --release

test-rust:
	$(CARGO) test --workspace

# Model-check the ring protocol (core/src/ring.rs, loom_tests).
test-loom:
	RUSTFLAGS="--cfg loom" $(CARGO) test -p shmbus --release --lib --target-dir target/loom -- loom --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

venv: $(VENV)/.ok
$(VENV)/.ok:
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.5,<2" "pytest>=7" "pytest-timeout>=2"
	touch $@

-include mk/*.mk

test: $(TEST_TARGETS)
	@echo "make test: all suites passed"

clean:
	$(CARGO) clean
	rm -rf $(VENV)
