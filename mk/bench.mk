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
#   make bench-c           C path vs Rust path (issue #3): builds benches/c/bench_c.c
#                          against the release libshmbus, runs it and its Rust twin
#                          (rust-path) interleaved in process (publish, recv, publish+recv),
#                          then the harness `throughput` scenario with the C
#                          producer/subscriber processes as peer `shmbus-c`
#                          (BENCH_C_ARGS="--runs 7 --frames 2000000 --rounds 1000000",
#                          BENCH_C_HARNESS_ARGS="--scenarios throughput,throughput-pinned")
#
# Other parts append their own benchmarks with `BENCH_TARGETS += name`, before
# or after this file is read: the prerequisites of `bench` are expanded a
# second time when make runs the rule.

HARNESS_ARGS ?=
SMOKE_ARGS ?= --quick --runs 1 --round-trips 2000 --frames 5000

BENCH_CC ?= gcc
BENCH_CFLAGS ?= -std=c11 -O2 -Wall -Wextra -Werror
BENCH_C_LIBDIR := $(CURDIR)/target/release
BENCH_C := build/bench/bench_c
BENCH_C_ARGS ?= --runs 7 --frames 2000000 --rounds 1000000
BENCH_C_HARNESS_ARGS ?= --scenarios throughput,throughput-pinned

TEST_TARGETS += test-bench-smoke
BENCH_TARGETS += bench-c

.PHONY: bench bench-harness bench-iceoryx2 bench-criterion bench-baseline test-bench-smoke bench-c

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

# With the C peer (and its Overflow::Block twin), so the C path of the
# harness runs in CI too.
test-bench-smoke: $(BENCH_C)
	$(CARGO) build --release -p shmbus-benches --bin harness
	SHMBUS_BENCH_C=$(CURDIR)/$(BENCH_C) ./target/release/harness $(SMOKE_ARGS) > /dev/null
	@echo "test-bench-smoke: harness completed (C peer included), counts reconciled"

$(BENCH_C): benches/c/bench_c.c include/shmbus.h FORCE_BENCH_C
	$(CARGO) build --release -p shmbus-ffi
	@mkdir -p $(dir $@)
	$(BENCH_CC) $(BENCH_CFLAGS) -Iinclude benches/c/bench_c.c -o $@ \
	  -L$(BENCH_C_LIBDIR) -lshmbus -Wl,-rpath,$(BENCH_C_LIBDIR)

.PHONY: FORCE_BENCH_C
FORCE_BENCH_C:

bench-c: $(BENCH_C)
	$(CARGO) build --release -p shmbus-benches --bin rust-path --bin harness
	./target/release/rust-path --c-bin $(BENCH_C) $(BENCH_C_ARGS)
	SHMBUS_BENCH_C=$(CURDIR)/$(BENCH_C) ./target/release/harness $(BENCH_C_HARNESS_ARGS)
