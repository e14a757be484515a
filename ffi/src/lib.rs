//! # shmbus-ffi — the C ABI of shmbus
//!
//! Builds `libshmbus.so` and `libshmbus.a`; `include/shmbus.h` is generated
//! from this crate by cbindgen (`ffi/cbindgen.toml`, `make header`) and
//! checked by `ffi/tests/header.rs`.
//!
//! Conventions (stated for C users in the header's top comment):
//!
//! * opaque handles (`shmbus_bus_t`, `shmbus_sub_t`, `shmbus_claim_t`), each
//!   mapped to its Rust type by [`handle::Handle`];
//! * every fallible entry point returns a [`shmbus_status_t`] and writes its
//!   results through out-pointers;
//! * every entry point runs inside [`status::ffi_boundary!`], which catches
//!   panics, so nothing unwinds into C and nothing aborts the host program;
//! * failures record a message for the thread-local [`shmbus_last_error`].
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// The order of these modules is the order of the declarations in the header.
mod status;

mod types;

mod bus;

mod sub;

mod claim;

mod handle;

pub use bus::{
    shmbus_bus_t, shmbus_close, shmbus_create, shmbus_open, shmbus_open_or_create, shmbus_publish, shmbus_publish_many,
    shmbus_publish_many_with, shmbus_publish_with, shmbus_remove, shmbus_stats,
};
pub use claim::{
    shmbus_claim, shmbus_claim_abort, shmbus_claim_commit, shmbus_claim_len, shmbus_claim_payload, shmbus_claim_t,
    shmbus_claim_with,
};
pub use status::{shmbus_last_error, shmbus_status_str, shmbus_status_t, shmbus_version};
pub use sub::{
    shmbus_frame_fn, shmbus_join_group, shmbus_join_group_with, shmbus_recv, shmbus_recv_many, shmbus_sub_abandoned,
    shmbus_sub_close, shmbus_sub_delivered, shmbus_sub_missed, shmbus_sub_t, shmbus_subscribe, shmbus_subscribe_regex,
    shmbus_subscribe_with,
};
pub use types::{
    shmbus_config_default, shmbus_config_t, shmbus_event_type_str, shmbus_event_type_t, shmbus_filter_t,
    shmbus_frame_t, shmbus_kind_str, shmbus_kind_t, shmbus_meta_default, shmbus_meta_t, shmbus_overflow_t,
    shmbus_payload_t, shmbus_start_t, shmbus_stats_t, shmbus_subscribe_options_default, shmbus_subscribe_options_t,
    shmbus_wait_t, SHMBUS_MAX_GROUP_LEN, SHMBUS_MAX_NAME_LEN, SHMBUS_MAX_TOPIC_LEN,
};

#[cfg(test)]
mod tests;
