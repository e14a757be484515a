//! Claims: reserve a frame, fill it in place, commit or abort it.

use std::ffi::{c_char, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use shmbus_core::{Bus, Claim, Meta};

use crate::bus::shmbus_bus_t;
use crate::handle::{arg_ref, c_str, opt_out, out, Handle};
use crate::status::shmbus_status_t::{self, SHMBUS_OK, SHMBUS_WRONG_THREAD};
use crate::status::{ffi_boundary, Failure};
use crate::types::shmbus_meta_t;

/// A frame reserved by `shmbus_claim` and being written in place. Finish it
/// with exactly one successful `shmbus_claim_commit` or `shmbus_claim_abort`,
/// on the thread that made it. Until then that thread cannot publish or
/// claim on the same bus (`SHMBUS_CLAIM_OUTSTANDING`).
#[allow(non_camel_case_types)]
pub struct shmbus_claim_t {
    _private: [u8; 0],
}

/// The Rust side of a claim handle: the claim and the bus handle it borrows.
pub(crate) struct ClaimState {
    /// Borrows `*bus`; always `Some` until commit, and dropped before `bus` is freed.
    claim: Option<Claim<'static>>,
    /// An owned clone of the bus (from `Box::into_raw`), freed in `Drop`.
    bus: NonNull<Bus>,
    payload: *mut u8,
    len: usize,
    /// [`thread_id`] of the thread that made the claim.
    owner: u64,
}

/// A number unique to the calling thread for the life of the process.
///
/// Not `std::thread::current().id()`: on a thread created by C that makes std
/// allocate a thread handle it never frees, which memcheck reports as a leak.
fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    ID.with(|id| *id)
}

impl Handle for shmbus_claim_t {
    type Rust = ClaimState;
}

impl ClaimState {
    fn new(bus: &Bus, meta: &Meta, topic: &str, len: usize) -> Result<ClaimState, Failure> {
        let owned = NonNull::from(Box::leak(Box::new(bus.clone())));
        // SAFETY: `owned` stays allocated until `Drop for ClaimState`, which
        // drops the claim (the only borrow) first; the `'static` never escapes
        // this struct.
        let bus_ref: &'static Bus = unsafe { owned.as_ref() };
        match bus_ref.claim_with(meta, topic, len) {
            Ok(mut claim) => {
                let payload = claim.payload_mut().as_mut_ptr();
                Ok(ClaimState {
                    claim: Some(claim),
                    bus: owned,
                    payload,
                    len,
                    owner: thread_id(),
                })
            }
            Err(e) => {
                // SAFETY: `owned` came from `Box::leak` above and nothing borrows it any more.
                drop(unsafe { Box::from_raw(owned.as_ptr()) });
                Err(e.into())
            }
        }
    }

    fn check_thread(&self, function: &str) -> Result<(), Failure> {
        if thread_id() != self.owner {
            return Err(Failure::new(
                SHMBUS_WRONG_THREAD,
                format!("{function} must be called on the thread that made the claim; the claim is still open"),
            ));
        }
        Ok(())
    }
}

impl Drop for ClaimState {
    fn drop(&mut self) {
        // Dropping an uncommitted claim aborts it (readers skip it).
        drop(self.claim.take());
        // SAFETY: `bus` came from `Box::leak` in `new`, the claim borrowing it
        // is gone, and this is the only place that frees it.
        drop(unsafe { Box::from_raw(self.bus.as_ptr()) });
    }
}

/// Reserve a frame of `len` payload bytes on `topic` with default metadata,
/// to be filled in place (zero-copy) through `shmbus_claim_payload`, then
/// published with `shmbus_claim_commit` or dropped with `shmbus_claim_abort`.
///
/// The payload starts zeroed. Fails like `shmbus_publish`; in particular
/// `SHMBUS_CLAIM_OUTSTANDING` if this thread already holds a claim on this bus.
/// On success `*out_claim` is a handle; on failure it is left unchanged.
///
/// # Safety
/// `bus` is NULL or a live handle; `topic` is NULL or NUL-terminated;
/// `out_claim` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_claim(
    bus: *const shmbus_bus_t,
    topic: *const c_char,
    len: usize,
    out_claim: *mut *mut shmbus_claim_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_claim", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, topic, out_claim) = unsafe {
            (
                shmbus_bus_t::try_ref(bus, "bus")?,
                c_str(topic, "topic")?,
                out(out_claim, "out_claim")?,
            )
        };
        let state = ClaimState::new(bus, &Meta::default(), topic, len)?;
        out_claim.write(shmbus_claim_t::into_raw(state));
        Ok(SHMBUS_OK)
    })
}

/// `shmbus_claim` with explicit metadata; fails like `shmbus_publish_with`.
///
/// # Safety
/// As `shmbus_claim`; `meta` is NULL or points to a `shmbus_meta_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_claim_with(
    bus: *const shmbus_bus_t,
    meta: *const shmbus_meta_t,
    topic: *const c_char,
    len: usize,
    out_claim: *mut *mut shmbus_claim_t,
) -> shmbus_status_t {
    ffi_boundary!("shmbus_claim_with", {
        // SAFETY: the caller passes valid or NULL pointers (this function's contract).
        let (bus, meta, topic, out_claim) = unsafe {
            (
                shmbus_bus_t::try_ref(bus, "bus")?,
                arg_ref(meta, "meta")?,
                c_str(topic, "topic")?,
                out(out_claim, "out_claim")?,
            )
        };
        let state = ClaimState::new(bus, &meta.to_rust()?, topic, len)?;
        out_claim.write(shmbus_claim_t::into_raw(state));
        Ok(SHMBUS_OK)
    })
}

/// The payload bytes of a claim, `shmbus_claim_len(claim)` of them, to
/// write in place. Valid until the claim is committed or aborted. NULL if
/// `claim` is NULL (and `shmbus_last_error()` says so); for a zero-length
/// claim a non-NULL pointer to no bytes.
///
/// # Safety
/// `claim` is NULL or a live claim handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_claim_payload(claim: *mut shmbus_claim_t) -> *mut c_void {
    ffi_boundary!("shmbus_claim_payload", default = std::ptr::null_mut(), {
        // SAFETY: the caller passes a live claim handle or NULL.
        let state = unsafe { shmbus_claim_t::try_ref(claim, "claim")? };
        Ok(state.payload.cast::<c_void>())
    })
}

/// Payload length of a claim in bytes (the `len` it was made with); 0 if
/// `claim` is NULL (and `shmbus_last_error()` says so).
///
/// # Safety
/// `claim` is NULL or a live claim handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_claim_len(claim: *const shmbus_claim_t) -> usize {
    ffi_boundary!("shmbus_claim_len", default = 0, {
        // SAFETY: the caller passes a live claim handle or NULL.
        Ok(unsafe { shmbus_claim_t::try_ref(claim, "claim")? }.len)
    })
}

/// Publish a claimed frame and free the claim handle; `*out_seq` (if
/// `out_seq` is not NULL) gets its seq.
///
/// Fails, leaving the claim open, with `SHMBUS_INVALID_ARGUMENT` for a NULL
/// `claim` or `SHMBUS_WRONG_THREAD` when called on a thread other than the
/// one that made the claim.
///
/// # Safety
/// `claim` is NULL or a live claim handle, not used after a successful call;
/// `out_seq` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmbus_claim_commit(claim: *mut shmbus_claim_t, out_seq: *mut u64) -> shmbus_status_t {
    ffi_boundary!("shmbus_claim_commit", {
        // SAFETY: the caller passes a live claim handle or NULL, and a writable or NULL seq.
        let (state, out_seq) = unsafe { (shmbus_claim_t::try_ref(claim, "claim")?, opt_out(out_seq)) };
        state.check_thread("shmbus_claim_commit")?;
        // SAFETY: the handle is live (checked non-NULL above) and ownership comes
        // back to us exactly once; the caller must not use it after success.
        let mut state = unsafe { shmbus_claim_t::take(claim) }.ok_or_else(|| Failure::null("claim"))?;
        let seq = state.claim.take().map(Claim::commit).unwrap_or_default();
        drop(state);
        if let Some(o) = out_seq {
            o.write(seq);
        }
        Ok(SHMBUS_OK)
    })
}

/// Abort a claim: readers skip the frame, and the handle is freed. NULL is
/// ignored (returns `SHMBUS_OK`).
///
/// Fails, leaving the claim open, with `SHMBUS_WRONG_THREAD` when called on
/// a thread other than the one that made the claim.
///
/// # Safety
/// `claim` is NULL or a live claim handle, not used after a successful call.
#[no_mangle]
pub unsafe extern "C" fn shmbus_claim_abort(claim: *mut shmbus_claim_t) -> shmbus_status_t {
    ffi_boundary!("shmbus_claim_abort", {
        if claim.is_null() {
            return Ok(SHMBUS_OK);
        }
        // SAFETY: the caller passes a live claim handle (non-NULL checked above).
        unsafe { shmbus_claim_t::try_ref(claim, "claim")? }.check_thread("shmbus_claim_abort")?;
        // SAFETY: as above; ownership comes back exactly once and dropping aborts.
        drop(unsafe { shmbus_claim_t::take(claim) });
        Ok(SHMBUS_OK)
    })
}
