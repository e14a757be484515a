//! Benchmarks of shmbus.
//!
//! * `benches/micro.rs`: criterion micro-benchmarks of the in-process API
//!   (`cargo bench -p shmbus-benches --bench micro`).
//! * [`harness`]: the cross-process harness, used by the `harness` binary of
//!   this crate and by `shmbus bench`.
//!
//! See `BENCHMARKS.md` at the repository root for the methodology and results.
#![warn(missing_docs)]

pub mod harness;
