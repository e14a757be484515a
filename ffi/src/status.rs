//! Status codes, the thread-local last error, and the panic boundary.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};

use shmbus_core::{Error, FilterError};

/// Result of every fallible call. `SHMBUS_OK` is 0; every other value is a
/// failure (except `SHMBUS_TIMEOUT`, which only `shmbus_recv` returns and
/// which does not touch `shmbus_last_error()`).
///
/// The values are stable: new codes are only ever appended.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_status_t {
    /// Success.
    SHMBUS_OK = 0,
    /// `shmbus_recv`: no matching frame arrived before the timeout.
    SHMBUS_TIMEOUT = 1,
    /// The bus is full and its overflow policy is REJECT or BLOCK.
    SHMBUS_FULL = 2,
    /// A NULL pointer, a string that is not UTF-8, or a value out of range
    /// (such as an unknown enum value) was passed.
    SHMBUS_INVALID_ARGUMENT = 3,
    /// No bus with this name exists.
    SHMBUS_NOT_FOUND = 4,
    /// A bus with this name already exists.
    SHMBUS_EXISTS = 5,
    /// The segment is not a shmbus segment of this layout version, or is corrupt.
    SHMBUS_INCOMPATIBLE = 6,
    /// The payload is larger than the bus's `max_frame_size`.
    SHMBUS_TOO_LARGE = 7,
    /// A table in the segment (subscribers, groups, producers) is full.
    SHMBUS_LIMIT = 8,
    /// An operating-system call failed.
    SHMBUS_IO = 9,
    /// The bus name or group name is not acceptable.
    SHMBUS_INVALID_NAME = 10,
    /// A configuration field is out of range; the message names the field.
    SHMBUS_INVALID_CONFIG = 11,
    /// A topic, topic pattern or regex is malformed.
    SHMBUS_INVALID_TOPIC = 12,
    /// The segment's permissions do not let this process in.
    SHMBUS_PERMISSION_DENIED = 13,
    /// This thread holds an uncommitted claim on this bus; commit or abort it first.
    SHMBUS_CLAIM_OUTSTANDING = 14,
    /// The consumer group exists with a different filter.
    SHMBUS_GROUP_MISMATCH = 15,
    /// The bus is single-producer and another producer is active.
    SHMBUS_PRODUCER_CONFLICT = 16,
    /// A claim was committed or aborted on a thread other than the one that made it.
    SHMBUS_WRONG_THREAD = 17,
    /// A bug: an internal panic was caught at the boundary, or an error this
    /// version does not know. The message has the details.
    SHMBUS_INTERNAL = 18,
}

use shmbus_status_t::*;

impl shmbus_status_t {
    /// Every status, in numeric order.
    pub(crate) const ALL: [shmbus_status_t; 19] = [
        SHMBUS_OK,
        SHMBUS_TIMEOUT,
        SHMBUS_FULL,
        SHMBUS_INVALID_ARGUMENT,
        SHMBUS_NOT_FOUND,
        SHMBUS_EXISTS,
        SHMBUS_INCOMPATIBLE,
        SHMBUS_TOO_LARGE,
        SHMBUS_LIMIT,
        SHMBUS_IO,
        SHMBUS_INVALID_NAME,
        SHMBUS_INVALID_CONFIG,
        SHMBUS_INVALID_TOPIC,
        SHMBUS_PERMISSION_DENIED,
        SHMBUS_CLAIM_OUTSTANDING,
        SHMBUS_GROUP_MISMATCH,
        SHMBUS_PRODUCER_CONFLICT,
        SHMBUS_WRONG_THREAD,
        SHMBUS_INTERNAL,
    ];

    /// A static, NUL-terminated description.
    fn describe(self) -> &'static [u8] {
        match self {
            SHMBUS_OK => b"ok\0",
            SHMBUS_TIMEOUT => b"timed out\0",
            SHMBUS_FULL => b"bus is full\0",
            SHMBUS_INVALID_ARGUMENT => b"invalid argument\0",
            SHMBUS_NOT_FOUND => b"bus not found\0",
            SHMBUS_EXISTS => b"bus already exists\0",
            SHMBUS_INCOMPATIBLE => b"incompatible segment\0",
            SHMBUS_TOO_LARGE => b"frame too large\0",
            SHMBUS_LIMIT => b"table limit reached\0",
            SHMBUS_IO => b"operating-system error\0",
            SHMBUS_INVALID_NAME => b"invalid name\0",
            SHMBUS_INVALID_CONFIG => b"invalid config\0",
            SHMBUS_INVALID_TOPIC => b"invalid topic, pattern or regex\0",
            SHMBUS_PERMISSION_DENIED => b"permission denied\0",
            SHMBUS_CLAIM_OUTSTANDING => b"claim outstanding on this thread\0",
            SHMBUS_GROUP_MISMATCH => b"group filter mismatch\0",
            SHMBUS_PRODUCER_CONFLICT => b"another producer is active\0",
            SHMBUS_WRONG_THREAD => b"claim used from the wrong thread\0",
            SHMBUS_INTERNAL => b"internal error\0",
        }
    }
}

/// A failed call: the status to return and the message for `shmbus_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: shmbus_status_t,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: shmbus_status_t, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
    pub(crate) fn null(arg: &str) -> Failure {
        Failure::new(SHMBUS_INVALID_ARGUMENT, format!("argument `{arg}` is NULL"))
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match &e {
            Error::InvalidName { .. } => SHMBUS_INVALID_NAME,
            Error::Config { .. } => SHMBUS_INVALID_CONFIG,
            Error::NotFound { .. } => SHMBUS_NOT_FOUND,
            Error::Exists { .. } => SHMBUS_EXISTS,
            Error::Incompatible { .. } => SHMBUS_INCOMPATIBLE,
            Error::PermissionDenied { .. } => SHMBUS_PERMISSION_DENIED,
            Error::Full => SHMBUS_FULL,
            Error::TooLarge { .. } => SHMBUS_TOO_LARGE,
            Error::Limit { .. } => SHMBUS_LIMIT,
            Error::Filter(_) => SHMBUS_INVALID_TOPIC,
            Error::ClaimOutstanding => SHMBUS_CLAIM_OUTSTANDING,
            Error::GroupFilterMismatch { .. } => SHMBUS_GROUP_MISMATCH,
            Error::ProducerConflict { .. } => SHMBUS_PRODUCER_CONFLICT,
            Error::Io { .. } => SHMBUS_IO,
            _ => SHMBUS_INTERNAL,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<FilterError> for Failure {
    fn from(e: FilterError) -> Failure {
        Failure::new(SHMBUS_INVALID_TOPIC, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Record `message` (prefixed with the function name) as this thread's last error.
pub(crate) fn set_last_error(function: &str, message: &str) {
    let text = format!("{function}: {message}").replace('\0', "\\0");
    let text = CString::new(text).unwrap_or_default();
    // A thread being torn down has no slot left; the status code still reports the failure.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = text;
        }
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("internal panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("internal panic: {s}")
    } else {
        "internal panic".to_string()
    }
}

/// Run `body` for the entry point `function`: a `Failure` becomes its status
/// and the last error; a panic becomes `SHMBUS_INTERNAL` and the last error.
pub(crate) fn guard(
    function: &'static str,
    body: impl FnOnce() -> Result<shmbus_status_t, Failure>,
) -> shmbus_status_t {
    guard_value(function, SHMBUS_INTERNAL, |f| f.status, body)
}

/// Like [`guard`] for entry points that return a plain value: on failure or
/// panic the last error is set and `on_failure` (or `status_of(failure)`) is returned.
pub(crate) fn guard_value<T>(
    function: &'static str,
    on_panic: T,
    status_of: impl FnOnce(&Failure) -> T,
    body: impl FnOnce() -> Result<T, Failure>,
) -> T {
    // The failure is turned into `T` inside the closure, so that what
    // `catch_unwind` passes back through memory is a bare `T`. Passing the
    // whole `Result<T, Failure>` made the success path store a 4-byte status
    // and reload it as part of an 8-byte word: a failed store-to-load
    // forward, about 5 ns on every call (issue #3, BENCHMARKS.md).
    let run = || match body() {
        Ok(v) => v,
        Err(failure) => {
            set_last_error(function, &failure.message);
            status_of(&failure)
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(v) => v,
        Err(payload) => {
            // Dropping the payload could itself panic; forget it rather than risk unwinding into C.
            let message = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| panic_message(&*payload)))
                .unwrap_or_else(|_| "internal panic".to_string());
            std::mem::forget(payload);
            set_last_error(function, &message);
            on_panic
        }
    }
}

/// Wrap the body of an `extern "C"` entry point so that nothing unwinds into C.
///
/// * `ffi_boundary!("name", { ...; Ok(SHMBUS_OK) })` — the body returns
///   `Result<shmbus_status_t, Failure>`; the function returns the status.
/// * `ffi_boundary!("name", default = EXPR, { ...; Ok(value) })` — the body
///   returns `Result<T, Failure>`; failures and panics return `EXPR`.
///
/// Either way a failure or a panic records the message for `shmbus_last_error()`.
macro_rules! ffi_boundary {
    ($name:literal, default = $default:expr, $body:block) => {
        $crate::status::guard_value($name, $default, |_| $default, || $body)
    };
    ($name:literal, $body:block) => {
        $crate::status::guard($name, || $body)
    };
}
pub(crate) use ffi_boundary;

/// A static NUL-terminated string as a C pointer.
pub(crate) fn static_cstr(s: &'static [u8]) -> *const c_char {
    debug_assert_eq!(s.last(), Some(&0));
    s.as_ptr().cast::<c_char>()
}

/// The message of the last failed call on the calling thread, or `""` if no
/// call on this thread has failed yet. Never NULL.
///
/// The text names the function and what went wrong (for example
/// `shmbus_publish: argument `topic` is NULL`). It stays until the next
/// failing call on this thread replaces it: successful calls do not clear it,
/// so check the status code first. The pointer is valid until the next
/// failing shmbus call on this thread; copy the text to keep it longer.
#[no_mangle]
pub extern "C" fn shmbus_last_error() -> *const c_char {
    ffi_boundary!("shmbus_last_error", default = static_cstr(b"\0"), {
        let ptr = LAST_ERROR
            .try_with(|slot| slot.try_borrow().map(|s| s.as_ptr()).ok())
            .ok()
            .flatten();
        Ok(ptr.unwrap_or_else(|| static_cstr(b"\0")))
    })
}

/// A static description of a status code (for example `"bus is full"` for
/// `SHMBUS_FULL`), or `"unknown status"` for a value that is not a
/// `shmbus_status_t`. Never NULL; the string lives forever.
///
/// Takes an `int` so that any value returned by a shmbus call may be passed.
#[no_mangle]
pub extern "C" fn shmbus_status_str(status: c_int) -> *const c_char {
    ffi_boundary!("shmbus_status_str", default = static_cstr(b"unknown status\0"), {
        let found = usize::try_from(status)
            .ok()
            .and_then(|i| shmbus_status_t::ALL.get(i))
            .map(|s| s.describe());
        Ok(static_cstr(found.unwrap_or(b"unknown status\0")))
    })
}

/// The version of libshmbus, for example `"0.1.0"`. Never NULL; the string
/// lives forever.
#[no_mangle]
pub extern "C" fn shmbus_version() -> *const c_char {
    static_cstr(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: shmbus_last_error never returns NULL and the string is
        // valid until the next failing call on this thread.
        unsafe { CStr::from_ptr(shmbus_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn status_values_are_their_index() {
        for (i, s) in shmbus_status_t::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn panics_become_internal_status_and_message() {
        let status = guard("shmbus_test_panic", || panic!("boom {}", 42));
        assert_eq!(status, SHMBUS_INTERNAL);
        assert_eq!(last(), "shmbus_test_panic: internal panic: boom 42");
        let v: u64 = ffi_boundary!("shmbus_test_value", default = 7, {
            if v_is_true() {
                panic!("static message");
            }
            Ok(1)
        });
        assert_eq!(v, 7);
        assert_eq!(last(), "shmbus_test_value: internal panic: static message");
    }

    fn v_is_true() -> bool {
        std::hint::black_box(true)
    }

    #[test]
    fn failures_set_the_message_and_nul_bytes_are_escaped() {
        let status = guard("shmbus_test", || Err(Failure::new(SHMBUS_FULL, "a\0b")));
        assert_eq!(status, SHMBUS_FULL);
        assert_eq!(last(), "shmbus_test: a\\0b");
        // Success leaves the message alone.
        assert_eq!(guard("shmbus_test", || Ok(SHMBUS_OK)), SHMBUS_OK);
        assert_eq!(last(), "shmbus_test: a\\0b");
    }

    #[test]
    fn last_error_is_per_thread() {
        let _ = guard("shmbus_main", || Err(Failure::null("x")));
        std::thread::spawn(|| assert_eq!(last(), "")).join().unwrap();
        assert_eq!(last(), "shmbus_main: argument `x` is NULL");
    }

    #[test]
    fn status_str_covers_every_code_and_unknown_values() {
        for s in shmbus_status_t::ALL {
            // SAFETY: static NUL-terminated strings.
            let text = unsafe { CStr::from_ptr(shmbus_status_str(s as c_int)) };
            assert!(!text.to_bytes().is_empty());
        }
        for bad in [-1, 19, c_int::MAX] {
            // SAFETY: as above.
            let text = unsafe { CStr::from_ptr(shmbus_status_str(bad)) };
            assert_eq!(text.to_str().unwrap(), "unknown status");
        }
    }
}
