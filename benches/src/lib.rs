//! Benchmarks of shmbus.
//!
//! * `benches/micro.rs`: criterion micro-benchmarks of the in-process API
//!   (`cargo bench -p shmbus-benches --bench micro`).
//! * [`TempBus`]: a bus removed on drop, used by all of them.
//! * [`harness`]: the cross-process harness, used by the `harness` binary of
//!   this crate and by `shmbus bench`; with `SHMBUS_BENCH_C` naming the C
//!   program `benches/c/bench_c.c` it also measures the C path
//!   ([`harness::C_PEER_ENV`]), and with `SHMBUS_BENCH_PY` naming a program
//!   that starts `python/bench/peer.py` the Python path
//!   ([`harness::PY_PEER_ENV`]).
//! * `src/bin/rust-path.rs` and `benches/c/bench_c.c`: the same in-process
//!   loops through the Rust API and the C API, run interleaved by
//!   `make bench-c` (issue #3).
//!
//! See `BENCHMARKS.md` at the repository root for the methodology and results.
#![warn(missing_docs)]

pub mod harness;
mod temp_bus;

pub use temp_bus::TempBus;
