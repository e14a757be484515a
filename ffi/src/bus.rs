//! Bus handles: create, open, remove, publish, stats.

use std::ffi::{c_char, c_void};

use shmbus_core::{Bus, Meta};

use crate::handle::{arg_ref, bytes, c_str, c_topic, opt_out, out, slice_arg, topic_error, Handle};
use crate::status::shmbus_status_t::{self, SHMBUS_OK};
use crate::status::{ffi_boundary, Failure};
use crate::types::{shmbus_config_t, shmbus_meta_t, shmbus_payload_t, shmbus_stats_t};

/// A handle on an open bus. Made by `shmbus_create`, `shmbus_open` or
/// `shmbus_open_or_create`; freed by `shmbus_close`. Thread-safe: any number
/// of threads may publish, claim and subscribe through one handle at once.
#[allow(non_camel_case_types)]
pub struct shmbus_bus_t {
    _private: [u8; 0],
}

impl Handle for shmbus_bus_t {
    type Rust = Bus;
}

/// Write a new bus handle to `out_bus`.
fn hand_out(bus: Bus, out_bus: &mut std::mem::MaybeUninit<*mut shmbus_bus_t>) -> Result<shmbus_status_t, Failure> {
    out_bus.write(shmbus_bus_t::into_raw(bus));
    Ok(SHMBUS_OK)
}

/// Create bus `name` with `config` and open it.
///
/// Fails with `SHMBUS_EXISTS` if the bus exists, `SHMBUS_INVALID_NAME` for a
/// bad name (empty, longer than `SHMBUS_MAX_NAME_LEN`, containing `/`, `..`,
/// whitespace or control characters), `SHMBUS_INVALID_CONFIG` for a bad
/// config, `SHMBUS_INVALID_ARGUMENT` for NULL pointers or a name that is not
/// UTF-8. On success `*out_bus` is a handle to close with `shmbus_close`;
/// on failure it is left unchanged.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `config` is NULL or points to a
/// `shmbus_config_t`; `out_bus` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_create(
    name: *const c_char,
    config: *const shmbus_config_t,
    out_bus: *mut *mut shmbus_bus_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_create", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (name, config, out_bus) = unsafe {
            (
                c_str(name, "name")?,
                arg_ref(config, "config")?,
                out(out_bus, "out_bus")?,
            )
        };
        let cfg = config.to_rust()?;
        hand_out(Bus::create(name, &cfg)?, out_bus)
    })
}

/// Open the existing bus `name` (it keeps the configuration it was created with).
///
/// Fails with `SHMBUS_NOT_FOUND` if there is no such bus,
/// `SHMBUS_INCOMPATIBLE` if the segment is not a shmbus segment of this
/// version, `SHMBUS_PERMISSION_DENIED`, `SHMBUS_INVALID_NAME`, or
/// `SHMBUS_INVALID_ARGUMENT`. On success `*out_bus` is a handle to close
/// with `shmbus_close`; on failure it is left unchanged.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out_bus` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_open(name: *const c_char, out_bus: *mut *mut shmbus_bus_t) -> shmbus_status_t {
    ffi_boundary!("shmbus_open", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (name, out_bus) = unsafe { (c_str(name, "name")?, out(out_bus, "out_bus")?) };
        hand_out(Bus::open(name)?, out_bus)
    })
}

/// Open bus `name`, creating it with `config` if it does not exist (an
/// existing bus keeps its own configuration). `config` is validated either way.
/// Errors as `shmbus_create` and `shmbus_open`, except `SHMBUS_EXISTS`.
///
/// # Safety
/// As `shmbus_create`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_open_or_create(
    name: *const c_char,
    config: *const shmbus_config_t,
    out_bus: *mut *mut shmbus_bus_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_open_or_create", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (name, config, out_bus) = unsafe {
            (
                c_str(name, "name")?,
                arg_ref(config, "config")?,
                out(out_bus, "out_bus")?,
            )
        };
        let cfg = config.to_rust()?;
        hand_out(Bus::open_or_create(name, &cfg)?, out_bus)
    })
}

/// Remove bus `name` from the system. Processes that have it open keep using
/// it until they close it; a later `shmbus_create` starts a fresh segment.
/// Fails with `SHMBUS_NOT_FOUND` if there is no such bus.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmbus_remove(name: *const c_char) -> shmbus_status_t {
    ffi_boundary!("shmbus_remove", {
        // SAFETY: the caller passes a valid or NULL pointer (this function's contract).
        let name = unsafe { c_str(name, "name")? };
        Bus::remove(name)?;
        Ok(SHMBUS_OK)
    })
}

/// Close a bus handle. Subscribers and claims made from it stay usable (they
/// keep the segment mapped) until they are closed themselves. NULL is ignored.
///
/// # Safety
/// `bus` is NULL or a handle from this library not closed yet; it must not
/// be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn shmbus_close(bus: *mut shmbus_bus_t) {
    ffi_boundary!("shmbus_close", default = (), {
        // SAFETY: the caller hands back a live handle or NULL, exactly once.
        drop(unsafe { shmbus_bus_t::take(bus) });
        Ok(())
    })
}

/// Publish `len` bytes at `payload` to `topic` as an event with default
/// metadata. `*out_seq` (if `out_seq` is not NULL) gets the frame's seq.
///
/// Never blocks with the default overflow policy. Fails with
/// `SHMBUS_INVALID_TOPIC` (empty, empty level, wildcard, whitespace, longer
/// than `SHMBUS_MAX_TOPIC_LEN`...), `SHMBUS_TOO_LARGE` (over `max_frame_size`),
/// `SHMBUS_FULL` (REJECT/BLOCK policies), `SHMBUS_CLAIM_OUTSTANDING`,
/// `SHMBUS_LIMIT` (producer table full) or `SHMBUS_INVALID_ARGUMENT` (NULL
/// `bus` or `topic`, NULL `payload` with `len > 0`, topic not UTF-8).
/// Does not allocate.
///
/// # Safety
/// `bus` is NULL or a live handle; `topic` is NULL or NUL-terminated;
/// `payload` is NULL or points to `len` readable bytes; `out_seq` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publish(
    bus: *const shmbus_bus_t,
    topic: *const c_char,
    payload: *const c_void,
    len: usize,
    out_seq: *mut u64,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_publish", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, topic, payload, out_seq) = unsafe {
            (
                shmbus_bus_t::try_ref(bus, "bus")?,
                c_topic(topic, "topic")?,
                bytes(payload, len, "payload")?,
                opt_out(out_seq),
            )
        };
        let seq = bus
            .publish_with_topic_bytes(&Meta::default(), topic, payload)
            .map_err(|e| topic_error(e, topic, "topic"))?;
        if let Some(o) = out_seq {
            o.write(seq);
        }
        Ok(SHMBUS_OK)
    })
}

/// `shmbus_publish` with explicit metadata (kind, event type, correlation ids).
/// Also fails with `SHMBUS_INVALID_ARGUMENT` for a NULL `meta` or a `meta`
/// with an unknown kind or event type, or kind `SHMBUS_KIND_PADDING`.
///
/// # Safety
/// As `shmbus_publish`; `meta` is NULL or points to a `shmbus_meta_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publish_with(
    bus: *const shmbus_bus_t,
    meta: *const shmbus_meta_t,
    topic: *const c_char,
    payload: *const c_void,
    len: usize,
    out_seq: *mut u64,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_publish_with", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, meta, topic, payload, out_seq) = unsafe {
            (
                shmbus_bus_t::try_ref(bus, "bus")?,
                arg_ref(meta, "meta")?,
                c_topic(topic, "topic")?,
                bytes(payload, len, "payload")?,
                opt_out(out_seq),
            )
        };
        let seq = bus
            .publish_with_topic_bytes(&meta.to_rust()?, topic, payload)
            .map_err(|e| topic_error(e, topic, "topic"))?;
        if let Some(o) = out_seq {
            o.write(seq);
        }
        Ok(SHMBUS_OK)
    })
}

/// Publish `count` payloads to `topic`, in order, in one call (the Rust
/// `Bus::publish_many`): much cheaper per frame than `shmbus_publish` for
/// small frames. Frames are claimed up to 16 KiB at a time; the frames of
/// one claim have consecutive seqs, and other producers' frames may come
/// between two claims. `*out_last_seq` receives the last frame's seq (left
/// unchanged when `count` is 0).
///
/// Every payload's size is checked first: `SHMBUS_TOO_LARGE` publishes
/// nothing. A later `SHMBUS_FULL` (REJECT/BLOCK policies) leaves the frames
/// of the earlier claims published. Otherwise
/// fails like `shmbus_publish`, and with `SHMBUS_INVALID_ARGUMENT` for a
/// NULL `payloads` with `count > 0` or a payload with NULL `data` and
/// `len > 0`. Allocates nothing.
///
/// # Safety
/// `bus` is NULL or a live handle; `topic` is NULL or NUL-terminated;
/// `payloads` is NULL or points to `count` `shmbus_payload_t`, each with
/// `data` NULL or pointing to `len` readable bytes; `out_last_seq` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publish_many(
    bus: *const shmbus_bus_t,
    topic: *const c_char,
    payloads: *const shmbus_payload_t,
    count: usize,
    out_last_seq: *mut u64,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_publish_many", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        unsafe { publish_many(bus, &Meta::default(), topic, payloads, count, out_last_seq) }
    })
}

/// `shmbus_publish_many` with explicit metadata, the same for every frame;
/// also fails with `SHMBUS_INVALID_ARGUMENT` for a NULL or invalid `meta`
/// (as `shmbus_publish_with`).
///
/// # Safety
/// As `shmbus_publish_many`; `meta` is NULL or points to a `shmbus_meta_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publish_many_with(
    bus: *const shmbus_bus_t,
    meta: *const shmbus_meta_t,
    topic: *const c_char,
    payloads: *const shmbus_payload_t,
    count: usize,
    out_last_seq: *mut u64,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_publish_many_with", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let meta = unsafe { arg_ref(meta, "meta")? }.to_rust()?;
        // SAFETY: as above.
        unsafe { publish_many(bus, &meta, topic, payloads, count, out_last_seq) }
    })
}

/// A `shmbus_payload_t` that was checked (by `bytes`): its bytes as a slice.
#[repr(transparent)]
struct PayloadView(shmbus_payload_t);

impl PayloadView {
    /// `list` as views, without copying.
    ///
    /// Every element must have passed `bytes(data, len, ..)`.
    fn all(list: &[shmbus_payload_t]) -> &[PayloadView] {
        // SAFETY: `PayloadView` is `repr(transparent)` over `shmbus_payload_t`,
        // so the two slices have the same layout; the lifetime is kept.
        unsafe { std::slice::from_raw_parts(list.as_ptr().cast::<PayloadView>(), list.len()) }
    }
}

impl AsRef<[u8]> for PayloadView {
    fn as_ref(&self) -> &[u8] {
        if self.0.len == 0 {
            return &[];
        }
        // SAFETY: checked by `bytes` before the view was made (`PayloadView::all`):
        // non-NULL, `len <= isize::MAX` readable bytes per the caller's contract,
        // valid for the call that holds the view.
        unsafe { std::slice::from_raw_parts(self.0.data.cast::<u8>(), self.0.len) }
    }
}

/// The body of `shmbus_publish_many(_with)`.
///
/// # Safety
/// As `shmbus_publish_many`.
unsafe fn publish_many(
    bus: *const shmbus_bus_t,
    meta: &Meta,
    topic: *const c_char,
    payloads: *const shmbus_payload_t,
    count: usize,
    out_last_seq: *mut u64,
) -> Result<shmbus_status_t, Failure> {
    // SAFETY: the caller passes valid or NULL pointers (this function's contract).
    let (bus, topic, list, out_last_seq) = unsafe {
        (
            shmbus_bus_t::try_ref(bus, "bus")?,
            c_topic(topic, "topic")?,
            slice_arg(payloads, count, "payloads")?,
            opt_out(out_last_seq),
        )
    };
    for p in list {
        // SAFETY: `data` is NULL or points to `len` readable bytes (contract);
        // this checks the NULL-with-length case and the length's bound.
        unsafe { bytes(p.data, p.len, "payloads[i].data")? };
    }
    let views = PayloadView::all(list);
    let last = bus
        .publish_many_with_topic_bytes(meta, topic, views)
        .map_err(|e| topic_error(e, topic, "topic"))?;
    if let (Some(o), Some(seq)) = (out_last_seq, last) {
        o.write(seq);
    }
    Ok(SHMBUS_OK)
}

/// Fill `*out_stats` with a snapshot of the bus's counters and geometry.
///
/// # Safety
/// `bus` is NULL or a live handle; `out_stats` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_stats(bus: *const shmbus_bus_t, out_stats: *mut shmbus_stats_t) -> shmbus_status_t {
    ffi_boundary!("shmbus_stats", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, out_stats) = unsafe { (shmbus_bus_t::try_ref(bus, "bus")?, out(out_stats, "out_stats")?) };
        let s = bus.stats();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        out_stats.write(shmbus_stats_t {
            published: s.published,
            claimed: s.claimed,
            evicted: s.evicted,
            rejected: s.rejected,
            aborted: s.aborted,
            abandoned: s.abandoned,
            bytes_used: s.bytes_used,
            data_capacity: s.data_capacity,
            memory_limit: s.memory_limit,
            keep_ratio: s.keep_ratio,
            partitions: s.partitions,
            oldest_seq: s.oldest_seq,
            next_seq: s.next_seq,
            subscribers: count(s.subscribers.len()),
            subscribers_alive: count(s.subscribers.iter().filter(|x| x.alive).count()),
            groups: count(s.groups.len()),
            producers: count(s.producers.len()),
        });
        Ok(SHMBUS_OK)
    })
}
