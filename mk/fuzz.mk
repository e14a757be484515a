# Fuzzing (fuzz/, crate shmbus-fuzz: cargo-fuzz targets over libFuzzer).
#
#   make fuzz              every target for FUZZ_SECONDS (default 30) each
#   make fuzz-TARGET       one target: fuzz-segment_open, fuzz-frame_decode,
#                          fuzz-filters, fuzz-ops
#   make test-fuzz-corpus  replay fuzz/corpus/ and fuzz/regressions/ through the
#                          targets as plain functions (stable toolchain, no
#                          libFuzzer); part of `make test`
#
# cargo-fuzz is installed on first use into fuzz/.tools (never globally). It
# needs nightly rustc flags: the nightly toolchain is used when rustup has one,
# else stable with RUSTC_BOOTSTRAP=1. New inputs go to fuzz/target/corpus/
# (not committed); the seed corpus fuzz/corpus/TARGET is read, never written.
# Crashes and hangs land in fuzz/artifacts/TARGET/: copy a reproducer to
# fuzz/regressions/TARGET/ so that `make test` replays it from then on.

FUZZ_SECONDS ?= 30
FUZZ_TIMEOUT ?= 10
FUZZ_SANITIZER ?= none
FUZZ_ARGS ?=
# Skip inputs that hit core bugs listed in fuzz/regressions/KNOWN_OPEN (their
# reproducers are seeds too and would stop the run at once); 0 to include them.
FUZZ_SKIP_KNOWN ?= 1
FUZZ_TARGETS := segment_open frame_decode filters ops
FUZZ_TOOLS := $(CURDIR)/fuzz/.tools
CARGO_FUZZ := $(FUZZ_TOOLS)/bin/cargo-fuzz
FUZZ_TOOLCHAIN ?= $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo +nightly)

TEST_TARGETS += test-fuzz-corpus

.PHONY: fuzz fuzz-tools test-fuzz-corpus $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-tools: $(CARGO_FUZZ)
$(CARGO_FUZZ):
	$(CARGO) install --locked --root $(FUZZ_TOOLS) cargo-fuzz

# A crash aborts the fuzzer before its segment guards run: remove the
# segments of fuzz processes that are gone, whatever the outcome.
FUZZ_SWEEP = for f in /dev/shm/shmbus.fuzz-*; do \
	  [ -e "$$f" ] || continue; pid=$$(echo "$$f" | awk -F- '{print $$(NF-1)}'); \
	  kill -0 "$$pid" 2>/dev/null || rm -f "$$f"; done

$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: $(CARGO_FUZZ)
	mkdir -p fuzz/target/corpus/$*
	cd fuzz && SHMBUS_FUZZ_SKIP_KNOWN=$(FUZZ_SKIP_KNOWN) RUSTC_BOOTSTRAP=1 PATH="$(FUZZ_TOOLS)/bin:$$PATH" \
	  cargo $(FUZZ_TOOLCHAIN) fuzz run --features libfuzzer --sanitizer $(FUZZ_SANITIZER) $* \
	  target/corpus/$* corpus/$* regressions/$* -- \
	  -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=4096 $(FUZZ_ARGS); \
	  rc=$$?; $(FUZZ_SWEEP); exit $$rc

test-fuzz-corpus:
	$(CARGO) test --manifest-path fuzz/Cargo.toml
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
