# Python package (python/): `pip install ./python` builds the Rust extension
# through PEP 517 (maturin comes from the build requirements), then pytest
# runs python/tests against the installed wheel. pytest runs from
# python/tests, whose directory holds no `shmbus` package, so the source tree
# cannot shadow the installed one (test_core.py checks this).

PYTEST_TIMEOUT ?= 120

TEST_TARGETS += test-python python-lint test-bench-smoke-python
BENCH_TARGETS += bench-python bench-harness-python

# The harness's Python peer (`shmbus-py`): a program that runs
# python/bench/peer.py under the venv's interpreter, named to the harness by
# SHMBUS_BENCH_PY (benches/src/harness/mod.rs, PY_PEER_ENV).
PY_PEER := build/bench/py_peer
PY_PEER_SCENARIOS := latency,latency-park,throughput,throughput-pinned,mpsc,fanout
PY_PEER_HARNESS_ARGS ?= --scenarios $(PY_PEER_SCENARIOS) --sizes 64

.PHONY: test-python bench-python python-install python-lint bench-harness-python test-bench-smoke-python

python-install: venv
	$(PY) -m pip install --quiet ./python

test-python: python-install
	cd python/tests && $(PY) -m pytest --timeout=$(PYTEST_TIMEOUT) -p no:cacheprovider

bench-python: python-install
	cd python/bench && $(PY) bench.py

python-lint:
	cd python && $(CARGO) fmt -- --check && $(CARGO) clippy --all-targets -- -D warnings

$(PY_PEER): python-install python/bench/peer.py
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec "%s" "%s" "$$@"\n' "$(PY)" "$(CURDIR)/python/bench/peer.py" > $@
	chmod +x $@

# Harness scenarios with the Python processes as peer `shmbus-py`, next to
# the Rust ones and crossbeam in one table.
bench-harness-python: $(PY_PEER)
	$(CARGO) build --release -p shmbus-benches --bin harness
	SHMBUS_BENCH_PY=$(CURDIR)/$(PY_PEER) ./target/release/harness $(PY_PEER_HARNESS_ARGS)

# Part of `make test`: a seconds-long harness run with the Python peer, so
# peer.py keeps speaking the child protocol and its counts reconcile.
test-bench-smoke-python: $(PY_PEER)
	$(CARGO) build --release -p shmbus-benches --bin harness
	SHMBUS_BENCH_PY=$(CURDIR)/$(PY_PEER) ./target/release/harness $(SMOKE_ARGS) \
	  --scenarios $(PY_PEER_SCENARIOS) > /dev/null
	@echo "test-bench-smoke-python: harness with the Python peer completed, counts reconciled"
