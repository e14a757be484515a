# Fault injection and soak (issue #5, hardening).
#
#   core/tests/faults.rs   scribbler, truncation, kill -9, remove-while-mapped,
#                          uid/permissions, names, bounds; part of `make test`
#                          (cargo test --workspace runs it; about 10 s)
#   make soak              bounded soak: 2 producers + 3 subscribers (one slow)
#                          at full speed on a 1 MiB bus for SOAK_SECONDS;
#                          segment size, RSS and counts are checked and a
#                          summary table is printed (release build)
#   make test-faults       only the fault-injection tests
#
# Set SHMBUS_FAULTS_SEED=N to replay a scribbler run with the printed seed.

SOAK_SECONDS ?= 180

.PHONY: soak test-faults

soak:
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test --release -p shmbus --test soak -- --ignored --nocapture soak_

test-faults:
	$(CARGO) test -p shmbus --test faults
