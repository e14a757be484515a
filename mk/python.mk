# Python package (python/): `pip install ./python` builds the Rust extension
# through PEP 517 (maturin comes from the build requirements), then pytest
# runs python/tests against the installed wheel. pytest runs from
# python/tests, whose directory holds no `shmbus` package, so the source tree
# cannot shadow the installed one (test_core.py checks this).

PYTEST_TIMEOUT ?= 120

TEST_TARGETS += test-python python-lint
BENCH_TARGETS += bench-python

.PHONY: test-python bench-python python-install python-lint

python-install: venv
	$(PY) -m pip install --quiet ./python

test-python: python-install
	cd python/tests && $(PY) -m pytest --timeout=$(PYTEST_TIMEOUT) -p no:cacheprovider

bench-python: python-install
	cd python/bench && $(PY) bench.py

python-lint:
	cd python && $(CARGO) fmt -- --check && $(CARGO) clippy --all-targets -- -D warnings
