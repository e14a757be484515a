//! libFuzzer entry point; the logic and what it proves are in
//! `shmbus_fuzz::segment_open` (also replayed over the corpus by `tests/corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmbus_fuzz::segment_open::run(data));
