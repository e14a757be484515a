# Benchmarks (benches/, crate shmbus-benches). Method and results: BENCHMARKS.md.
#
#   make bench             bench-harness + bench-criterion + every $(BENCH_TARGETS)
#   make bench-harness     cross-process harness, full run, release build
#                          (HARNESS_ARGS="--scenarios latency --sizes 64,1024 --json")
#   make bench-iceoryx2    the same with the iceoryx2 peer (cargo feature iceoryx2)
#   make bench-criterion   criterion micro-benches, compared with the saved
#                          baseline `main` when there is one
#   make bench-baseline    criterion micro-benches, saved as baseline `main`
#   make test-bench-smoke  seconds-long harness run (--quick): completes and
#                          counts reconcile; part of `make test`
#
# Other parts append their own benchmarks with `BENCH_TARGETS += name`, before
# or after this file is read: the prerequisites of `bench` are expanded a
# second time when make runs the rule.

HARNESS_ARGS ?=
SMOKE_ARGS ?= --quick --runs 1 --round-trips 2000 --frames 5000

TEST_TARGETS += test-bench-smoke

.PHONY: bench bench-harness bench-iceoryx2 bench-criterion bench-baseline test-bench-smoke

.SECONDEXPANSION:
bench: bench-harness bench-criterion $$(BENCH_TARGETS)

bench-harness:
	$(CARGO) run --release -p shmbus-benches --bin harness -- $(HARNESS_ARGS)

bench-iceoryx2:
	$(CARGO) run --release -p shmbus-benches --features iceoryx2 --bin harness -- $(HARNESS_ARGS)

bench-criterion:
	$(CARGO) bench -p shmbus-benches --bench micro -- --baseline-lenient main

bench-baseline:
	$(CARGO) bench -p shmbus-benches --bench micro -- --save-baseline main

test-bench-smoke:
	$(CARGO) build --release -p shmbus-benches --bin harness
	./target/release/harness $(SMOKE_ARGS) > /dev/null
	@echo "test-bench-smoke: harness completed, counts reconciled"
