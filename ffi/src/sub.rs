//! Subscribers: subscribe, join a group, receive, counters, close.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use shmbus_core::{Filter, Frame, SubscribeOptions, Subscriber};

use crate::bus::shmbus_bus_t;
use crate::handle::{arg_ref, c_str, opt_out, out, Handle};
use crate::status::shmbus_status_t::{self, SHMBUS_OK, SHMBUS_TIMEOUT};
use crate::status::{ffi_boundary, Failure};
use crate::types::{shmbus_frame_t, shmbus_subscribe_options_t, FilterKind, SHMBUS_MAX_TOPIC_LEN};

/// A subscription: a broadcast subscriber (sees every matching frame) or a
/// consumer-group member (each frame goes to one member). Made by
/// `shmbus_subscribe*` or `shmbus_join_group*`; freed by `shmbus_sub_close`.
/// Not thread-safe: use it from one thread at a time (it may move between threads).
#[allow(non_camel_case_types)]
pub struct shmbus_sub_t {
    _private: [u8; 0],
}

/// The Rust side of a subscriber handle.
pub(crate) struct SubState {
    sub: Subscriber,
    /// The current frame's topic, NUL-terminated for C.
    topic: [u8; SHMBUS_MAX_TOPIC_LEN + 1],
}

impl Handle for shmbus_sub_t {
    type Rust = SubState;
}

fn make_filter(kind: FilterKind, text: &str) -> Result<Filter, Failure> {
    Ok(match kind {
        FilterKind::Topic => Filter::try_topic(text)?,
        FilterKind::Regex => Filter::try_regex(text)?,
    })
}

fn hand_out(
    sub: Subscriber,
    out_sub: &mut std::mem::MaybeUninit<*mut shmbus_sub_t>,
) -> Result<shmbus_status_t, Failure> {
    out_sub.write(shmbus_sub_t::into_raw(SubState {
        sub,
        topic: [0; SHMBUS_MAX_TOPIC_LEN + 1],
    }));
    Ok(SHMBUS_OK)
}

/// Subscribe to topics matching the MQTT-style `pattern` (`+` matches one
/// level, a final `#` any number of trailing levels), from the newest frame
/// on, with the default wait strategy.
///
/// Fails with `SHMBUS_INVALID_TOPIC` for a malformed pattern, `SHMBUS_LIMIT`
/// when the subscriber table is full, or `SHMBUS_INVALID_ARGUMENT`. On
/// success `*out_sub` is a handle to close with `shmbus_sub_close`; on
/// failure it is left unchanged.
///
/// # Safety
/// `bus` is NULL or a live handle; `pattern` is NULL or NUL-terminated;
/// `out_sub` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscribe(
    bus: *const shmbus_bus_t,
    pattern: *const c_char,
    out_sub: *mut *mut shmbus_sub_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_subscribe", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, pattern, out_sub) = unsafe {
            (
                shmbus_bus_t::try_ref(bus, "bus")?,
                c_str(pattern, "pattern")?,
                out(out_sub, "out_sub")?,
            )
        };
        let filter = make_filter(FilterKind::Topic, pattern)?;
        hand_out(bus.subscribe(filter)?, out_sub)
    })
}

/// Subscribe to topics matching `regex`, anchored at the start of the topic
/// (Python `re.match` semantics; Rust `regex` crate syntax), from the newest
/// frame on. Errors as `shmbus_subscribe`.
///
/// # Safety
/// As `shmbus_subscribe`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscribe_regex(
    bus: *const shmbus_bus_t,
    regex: *const c_char,
    out_sub: *mut *mut shmbus_sub_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_subscribe_regex", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, regex, out_sub) = unsafe {
            (
                shmbus_bus_t::try_ref(bus, "bus")?,
                c_str(regex, "regex")?,
                out(out_sub, "out_sub")?,
            )
        };
        let filter = make_filter(FilterKind::Regex, regex)?;
        hand_out(bus.subscribe(filter)?, out_sub)
    })
}

/// Subscribe with options: `filter` is a topic pattern or a regex according
/// to `options->filter`, and `options` also sets the start position and the
/// wait strategy. Errors as `shmbus_subscribe`, plus `SHMBUS_INVALID_ARGUMENT`
/// for a NULL `options` or an unknown enum value in it.
///
/// # Safety
/// As `shmbus_subscribe`; `options` is NULL or points to a `shmbus_subscribe_options_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscribe_with(
    bus: *const shmbus_bus_t,
    filter: *const c_char,
    options: *const shmbus_subscribe_options_t,
    out_sub: *mut *mut shmbus_sub_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_subscribe_with", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, filter, options, out_sub) = unsafe {
            (
                shmbus_bus_t::try_ref(bus, "bus")?,
                c_str(filter, "filter")?,
                arg_ref(options, "options")?,
                out(out_sub, "out_sub")?,
            )
        };
        let (kind, opts) = options.to_rust()?;
        let filter = make_filter(kind, filter)?;
        hand_out(bus.subscribe_with(filter, opts)?, out_sub)
    })
}

/// Join (creating it if needed) the consumer group `group` with the topic
/// `pattern`: each matching frame goes to exactly one member. All members
/// must use the same filter (else `SHMBUS_GROUP_MISMATCH`). A new group
/// starts at the newest frame. Also fails with `SHMBUS_INVALID_NAME` for a
/// bad group name (empty, over `SHMBUS_MAX_GROUP_LEN` bytes, whitespace or
/// control characters) and as `shmbus_subscribe`.
///
/// # Safety
/// As `shmbus_subscribe`; `group` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shmbus_join_group(
    bus: *const shmbus_bus_t,
    group: *const c_char,
    pattern: *const c_char,
    out_sub: *mut *mut shmbus_sub_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_join_group", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, group, pattern, out_sub) = unsafe {
            (
                shmbus_bus_t::try_ref(bus, "bus")?,
                c_str(group, "group")?,
                c_str(pattern, "pattern")?,
                out(out_sub, "out_sub")?,
            )
        };
        let filter = make_filter(FilterKind::Topic, pattern)?;
        hand_out(
            bus.join_group_with(group, filter, SubscribeOptions::default())?,
            out_sub,
        )
    })
}

/// `shmbus_join_group` with options (`start` only applies when this call
/// creates the group). Errors as `shmbus_join_group` and `shmbus_subscribe_with`.
///
/// # Safety
/// As `shmbus_subscribe_with`; `group` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shmbus_join_group_with(
    bus: *const shmbus_bus_t,
    group: *const c_char,
    filter: *const c_char,
    options: *const shmbus_subscribe_options_t,
    out_sub: *mut *mut shmbus_sub_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_join_group_with", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, group, filter, options, out_sub) = unsafe {
            (
                shmbus_bus_t::try_ref(bus, "bus")?,
                c_str(group, "group")?,
                c_str(filter, "filter")?,
                arg_ref(options, "options")?,
                out(out_sub, "out_sub")?,
            )
        };
        let (kind, opts) = options.to_rust()?;
        let filter = make_filter(kind, filter)?;
        hand_out(bus.join_group_with(group, filter, opts)?, out_sub)
    })
}

impl SubState {
    /// Describe `frame` to C in `*out`, NUL-terminating its topic in `topic_buf`.
    ///
    /// Inlined into `shmbus_recv`, so the struct is built in the caller's
    /// memory (no temporary copy of its 112 bytes), and the topic is copied
    /// inline by [`copy_topic`] (no `memcpy` call): this is per-frame work
    /// the Rust API does not do, so it is kept to a few stores (issue #3's
    /// budget).
    #[inline(always)]
    fn describe(
        topic_buf: &mut [u8; SHMBUS_MAX_TOPIC_LEN + 1],
        frame: &Frame<'_>,
        out: &mut std::mem::MaybeUninit<shmbus_frame_t>,
    ) {
        let topic_len = copy_topic(topic_buf, frame.topic().as_bytes());
        let c = frame.correlation();
        out.write(shmbus_frame_t {
            topic: topic_buf.as_ptr().cast::<c_char>(),
            topic_len,
            payload: frame.payload().as_ptr(),
            payload_len: frame.payload().len(),
            seq: frame.seq(),
            timestamp_ns: frame.timestamp(),
            producer: frame.producer(),
            kind: frame.kind().into(),
            event_type: frame.event_type().into(),
            correlation_id: c.id.to_le_bytes(),
            parent_id: c.parent.to_le_bytes(),
            root_id: c.root.to_le_bytes(),
        });
    }
}

/// Copy `topic` (at most `SHMBUS_MAX_TOPIC_LEN` bytes are kept) into `buf`
/// and NUL-terminate it; returns the copied length.
///
/// Topics are short, so instead of a `memcpy` call the usual lengths are
/// copied with two overlapping loads and stores of 1, 4, 8 or 16 bytes (the
/// head and the tail of the topic), the way small-size `memcpy` does inline.
#[inline(always)]
fn copy_topic(buf: &mut [u8; SHMBUS_MAX_TOPIC_LEN + 1], topic: &[u8]) -> usize {
    let n = topic.len().min(SHMBUS_MAX_TOPIC_LEN);
    let t = &topic[..n];
    match n {
        0 => {}
        1..=3 => {
            // Bytes 0, n/2 and n-1 cover every byte of a 1..=3 byte topic.
            buf[0] = t[0];
            buf[n / 2] = t[n / 2];
            buf[n - 1] = t[n - 1];
        }
        4..=7 => {
            buf[..4].copy_from_slice(&t[..4]);
            buf[n - 4..n].copy_from_slice(&t[n - 4..]);
        }
        8..=16 => {
            buf[..8].copy_from_slice(&t[..8]);
            buf[n - 8..n].copy_from_slice(&t[n - 8..]);
        }
        17..=32 => {
            buf[..16].copy_from_slice(&t[..16]);
            buf[n - 16..n].copy_from_slice(&t[n - 16..]);
        }
        _ => buf[..n].copy_from_slice(t),
    }
    buf[n] = 0;
    n
}

/// Receive the next matching frame into `*out_frame`, waiting at most
/// `timeout_ms` milliseconds: 0 only checks what is ready, a negative value
/// waits as long as it takes.
///
/// Returns `SHMBUS_OK` with `*out_frame` filled in, `SHMBUS_TIMEOUT` (not an
/// error: `*out_frame` and `shmbus_last_error()` are untouched) when nothing
/// arrived in time, or `SHMBUS_INVALID_ARGUMENT` for NULL `sub` or `out_frame`.
///
/// The frame's `topic` and `payload` point into the subscriber's private
/// buffer: valid until the next call on that subscriber or its close.
/// Frames lost to eviction because this subscriber fell behind are counted
/// by `shmbus_sub_missed`. Does not allocate once the buffer has grown to the
/// largest frame seen.
///
/// # Safety
/// `sub` is NULL or a live subscriber handle not used by another thread
/// during the call; `out_frame` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_recv(
    sub: *mut shmbus_sub_t,
    timeout_ms: i64,
    out_frame: *mut shmbus_frame_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_recv", {
        // SAFETY: the caller passes valid or NULL pointers and no other thread uses `sub`.
        let (state, out_frame) = unsafe { (shmbus_sub_t::try_mut(sub, "sub")?, out(out_frame, "out_frame")?) };
        let SubState { sub, topic } = state;
        // Polling (`timeout_ms == 0`) is the per-frame path of a busy
        // consumer and stays inline; the waits go through one out-of-line
        // call, so their code does not crowd the polling path's registers.
        let frame = if timeout_ms == 0 {
            sub.try_recv()?
        } else {
            recv_waiting(sub, timeout_ms)?
        };
        match frame {
            Some(f) => {
                SubState::describe(topic, &f, out_frame);
                Ok(SHMBUS_OK)
            }
            None => Ok(SHMBUS_TIMEOUT),
        }
    })
}

/// The function `shmbus_recv_many` calls with each frame, and the caller's
/// `ctx`. The frame (its `topic` and `payload` too) is valid only during
/// the call: copy what you keep. It must not call into the same subscriber.
#[allow(non_camel_case_types)]
pub type shmbus_frame_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, frame: *const shmbus_frame_t)>;

/// Receive up to `max` frames, calling `callback(ctx, &frame)` with each
/// (the Rust `Subscriber::recv_many`): waits at most `timeout_ms`
/// milliseconds for the first (0: only what is ready, negative: as long as
/// it takes), then takes frames that are ready now without waiting again;
/// it may stop short of `max` while more are ready (call again). Cheaper
/// per frame than a loop of `shmbus_recv`.
///
/// Returns `SHMBUS_OK` with `*out_count` the number of frames passed to
/// `callback` (0 only when `max` is 0), `SHMBUS_TIMEOUT` when nothing
/// arrived in time (`*out_count` untouched), or `SHMBUS_INVALID_ARGUMENT`
/// for NULL `sub` or `callback`. Does not allocate once the subscriber's
/// buffer has grown to the largest frame seen.
///
/// # Safety
/// `sub` is NULL or a live subscriber handle not used by another thread
/// during the call (the callback must not use it either); `callback` is
/// NULL or a function safe to call with `ctx` and a frame; `out_count` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_recv_many(
    sub: *mut shmbus_sub_t,
    max: usize,
    timeout_ms: i64,
    callback: shmbus_frame_fn,
    ctx: *mut c_void,
    out_count: *mut usize,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_recv_many", {
        // SAFETY: the caller passes valid or NULL pointers and no other thread uses `sub`.
        let (state, out_count) = unsafe { (shmbus_sub_t::try_mut(sub, "sub")?, opt_out(out_count)) };
        let callback = callback.ok_or_else(|| Failure::null("callback"))?;
        let SubState { sub, topic } = state;
        let timeout = u64::try_from(timeout_ms).map_or(Duration::MAX, Duration::from_millis);
        let mut frame = std::mem::MaybeUninit::uninit();
        let n = sub.recv_many(max, timeout, |f| {
            SubState::describe(topic, &f, &mut frame);
            // SAFETY: `callback` is safe to call with `ctx` and a frame (this
            // function's contract); `frame` was just written by `describe`.
            unsafe { callback(ctx, frame.as_ptr()) };
        })?;
        if n == 0 && max > 0 {
            return Ok(SHMBUS_TIMEOUT);
        }
        if let Some(o) = out_count {
            o.write(n);
        }
        Ok(SHMBUS_OK)
    })
}

/// `shmbus_recv`'s waiting receive: up to `timeout_ms` milliseconds, or
/// as long as it takes for a negative value.
#[inline(never)]
fn recv_waiting(sub: &mut Subscriber, timeout_ms: i64) -> shmbus_core::Result<Option<Frame<'_>>> {
    match u64::try_from(timeout_ms) {
        Err(_) => sub.recv().map(Some),
        Ok(ms) => sub.recv_timeout(Duration::from_millis(ms)),
    }
}

/// A counter of a subscriber, or 0 with the last error set for NULL.
///
/// # Safety
/// `sub` is NULL or a live subscriber handle.
unsafe fn counter(function: &'static str, sub: *const shmbus_sub_t, read: fn(&Subscriber) -> u64) -> u64 {
    crate::status::guard_value(
        function,
        0,
        |_| 0,
        || {
            // SAFETY: the caller passes a live subscriber handle or NULL.
            let state = unsafe { shmbus_sub_t::try_ref(sub, "sub")? };
            Ok(read(&state.sub))
        },
    )
}

/// Frames this subscriber lost to eviction because it fell behind (exact;
/// for a group member, the frames the group lost while this member moved the
/// shared cursor). 0 if `sub` is NULL (and `shmbus_last_error()` says so).
///
/// # Safety
/// `sub` is NULL or a live subscriber handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_sub_missed(sub: *const shmbus_sub_t) -> u64 {
    // SAFETY: forwarded caller contract.
    unsafe { counter("shmbus_sub_missed", sub, Subscriber::missed) }
}

/// Frames delivered to this subscriber so far. 0 if `sub` is NULL (and
/// `shmbus_last_error()` says so).
///
/// # Safety
/// `sub` is NULL or a live subscriber handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_sub_delivered(sub: *const shmbus_sub_t) -> u64 {
    // SAFETY: forwarded caller contract.
    unsafe { counter("shmbus_sub_delivered", sub, Subscriber::delivered) }
}

/// Claims this subscriber skipped because their producer died before
/// committing. 0 if `sub` is NULL (and `shmbus_last_error()` says so).
///
/// # Safety
/// `sub` is NULL or a live subscriber handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_sub_abandoned(sub: *const shmbus_sub_t) -> u64 {
    // SAFETY: forwarded caller contract.
    unsafe { counter("shmbus_sub_abandoned", sub, Subscriber::abandoned) }
}

/// Close a subscriber and free its handle (and the last frame it handed
/// out); its entry in the bus's subscriber table is released. NULL is ignored.
///
/// # Safety
/// `sub` is NULL or a live subscriber handle; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn shmbus_sub_close(sub: *mut shmbus_sub_t) {
    ffi_boundary!("shmbus_sub_close", default = (), {
        // SAFETY: the caller hands back a live handle or NULL, exactly once.
        drop(unsafe { shmbus_sub_t::take(sub) });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::copy_topic;
    use crate::types::SHMBUS_MAX_TOPIC_LEN;

    #[test]
    fn copy_topic_copies_every_length_and_terminates() {
        let source: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
        for len in 0..=source.len() {
            // A dirty buffer: stale bytes must not show through.
            let mut buf = [0xAAu8; SHMBUS_MAX_TOPIC_LEN + 1];
            let n = copy_topic(&mut buf, &source[..len]);
            assert_eq!(n, len.min(SHMBUS_MAX_TOPIC_LEN), "length {len}");
            assert_eq!(&buf[..n], &source[..n], "length {len}");
            assert_eq!(buf[n], 0, "length {len}: not NUL-terminated");
        }
    }
}
