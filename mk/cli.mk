# The `shmbus` command (cli/, crate shmbus-cli).
#
#   make demo        cross-process demo: temporary bus, 1 producer, 2 subscribers
#                    (DEMO_ARGS="--seconds 10 --rate 100000" to change it)
#   make cli         build the release binary (target/release/shmbus)
#   make test-cli    only the CLI tests (they also run in `make test` via test-rust)

DEMO_ARGS ?=

.PHONY: demo cli test-cli

demo:
	$(CARGO) run --release -p shmbus-cli -- demo $(DEMO_ARGS)

cli:
	$(CARGO) build --release -p shmbus-cli

test-cli:
	$(CARGO) test -p shmbus-cli
