//! Conversions between C handles and argument pointers and their Rust values.
//!
//! Every opaque C handle type names its Rust type through [`Handle`]; handles
//! are only ever made by [`Handle::into_raw`] and turned back by the other
//! methods, so no raw pointer cast appears anywhere else.

use std::ffi::{c_char, c_void};
use std::mem::MaybeUninit;

use crate::status::{shmbus_status_t::SHMBUS_INVALID_ARGUMENT, Failure};

/// An opaque C handle type whose pointers are `Box<Self::Rust>` in disguise.
pub(crate) trait Handle: Sized {
    /// The Rust value behind the handle.
    type Rust;

    /// Box `value` and hand ownership to C.
    fn into_raw(value: Self::Rust) -> *mut Self {
        Box::into_raw(Box::new(value)).cast::<Self>()
    }

    /// Borrow the value behind a handle argument named `arg`.
    ///
    /// # Safety
    /// `ptr` is NULL or was returned by [`Handle::into_raw`] for this type and
    /// not yet freed, and no `&mut` to the value is alive for `'a`.
    unsafe fn try_ref<'a>(ptr: *const Self, arg: &str) -> Result<&'a Self::Rust, Failure> {
        // SAFETY: per this function's contract a non-NULL `ptr` points to a live `Self::Rust`.
        unsafe { ptr.cast::<Self::Rust>().as_ref() }.ok_or_else(|| Failure::null(arg))
    }

    /// Mutably borrow the value behind a handle argument named `arg`.
    ///
    /// # Safety
    /// As [`Handle::try_ref`], and no other reference to the value is alive for `'a`.
    unsafe fn try_mut<'a>(ptr: *mut Self, arg: &str) -> Result<&'a mut Self::Rust, Failure> {
        // SAFETY: per this function's contract a non-NULL `ptr` points to a live,
        // unaliased `Self::Rust`.
        unsafe { ptr.cast::<Self::Rust>().as_mut() }.ok_or_else(|| Failure::null(arg))
    }

    /// Take ownership back from C; `None` for NULL.
    ///
    /// # Safety
    /// `ptr` is NULL or was returned by [`Handle::into_raw`] for this type and
    /// not yet freed; it must not be used after this call.
    unsafe fn take(ptr: *mut Self) -> Option<Box<Self::Rust>> {
        if ptr.is_null() {
            return None;
        }
        // SAFETY: per this function's contract `ptr` came from `Box::into_raw`
        // of a `Box<Self::Rust>` and ownership is transferred back exactly once.
        Some(unsafe { Box::from_raw(ptr.cast::<Self::Rust>()) })
    }
}

/// A NUL-terminated UTF-8 string argument named `arg`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char, arg: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(arg));
    }
    // One pass finds the NUL and checks for ASCII, the usual case for names
    // and topics; only non-ASCII strings pay for full UTF-8 validation.
    let start = ptr.cast::<u8>();
    let mut len = 0usize;
    let mut ascii = true;
    loop {
        // SAFETY: NUL-terminated per this function's contract, and we stop at
        // the NUL, so every byte read is inside the string.
        let b = unsafe { *start.add(len) };
        if b == 0 {
            break;
        }
        ascii &= b < 0x80;
        len += 1;
    }
    // SAFETY: `len` bytes before the NUL are readable and live for 'a.
    let bytes = unsafe { std::slice::from_raw_parts(start, len) };
    if ascii {
        // SAFETY: every byte is ASCII, so the bytes are valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|e| {
        Failure::new(
            SHMBUS_INVALID_ARGUMENT,
            format!("argument `{arg}` is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// The bytes of a C string topic argument named `arg`, for the core's
/// `publish_with_topic_bytes`, which checks UTF-8 and the topic rules in one
/// word-at-a-time pass. Use [`topic_error`] on its errors, so that invalid
/// UTF-8 is `SHMBUS_INVALID_ARGUMENT` like every other string argument (the
/// UTF-8 check runs only on that error path).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for `'a`.
#[inline]
pub(crate) unsafe fn c_topic<'a>(ptr: *const c_char, arg: &str) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return Err(Failure::null(arg));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    Ok(unsafe { std::ffi::CStr::from_ptr(ptr) }.to_bytes())
}

/// The failure for a publish of `topic` (from [`c_topic`]) that failed with
/// `e`: `SHMBUS_INVALID_ARGUMENT` if the topic is not UTF-8, else `e`'s own.
#[cold]
pub(crate) fn topic_error(e: shmbus_core::Error, topic: &[u8], arg: &str) -> Failure {
    match std::str::from_utf8(topic) {
        Err(bad) if matches!(e, shmbus_core::Error::Filter(_)) => Failure::new(
            SHMBUS_INVALID_ARGUMENT,
            format!("argument `{arg}` is not valid UTF-8 (at byte {})", bad.valid_up_to()),
        ),
        _ => e.into(),
    }
}

/// A byte-buffer argument `ptr[0..len]` named `arg`; NULL is allowed when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes valid for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const c_void, len: usize, arg: &str) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(arg));
    }
    if isize::try_from(len).is_err() {
        return Err(Failure::new(
            SHMBUS_INVALID_ARGUMENT,
            format!("argument `{arg}` length {len} is impossibly large"),
        ));
    }
    // SAFETY: non-NULL, `len` readable bytes per this function's contract, and
    // `len <= isize::MAX` was checked above.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// A read-only array argument `arg` of `count` elements (empty when `count`
/// is 0, whatever `ptr` is).
///
/// # Safety
/// `ptr` is NULL or points to `count` initialised `T`s valid for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(ptr: *const T, count: usize, arg: &str) -> Result<&'a [T], Failure> {
    if count == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(arg));
    }
    let fits = count
        .checked_mul(std::mem::size_of::<T>())
        .is_some_and(|b| isize::try_from(b).is_ok());
    if !fits || ptr as usize % std::mem::align_of::<T>() != 0 {
        return Err(Failure::new(
            SHMBUS_INVALID_ARGUMENT,
            format!("argument `{arg}`: {count} elements at {ptr:p} cannot be an array"),
        ));
    }
    // SAFETY: non-NULL, aligned, `count` valid elements per this function's
    // contract, and the byte length fits `isize` (checked above).
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// A read-only struct argument named `arg`.
///
/// # Safety
/// `ptr` is NULL or points to an initialised `T` valid for `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, arg: &str) -> Result<&'a T, Failure> {
    // SAFETY: per this function's contract a non-NULL `ptr` points to a valid `T`.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(arg))
}

/// An out-pointer argument named `arg`, to be written with `MaybeUninit::write`.
///
/// # Safety
/// `ptr` is NULL or points to writable memory for a `T`, valid for `'a`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, arg: &str) -> Result<&'a mut MaybeUninit<T>, Failure> {
    // SAFETY: per this function's contract a non-NULL `ptr` is writable for a
    // `T`; `MaybeUninit` makes no claim that it is initialised.
    unsafe { ptr.cast::<MaybeUninit<T>>().as_mut() }.ok_or_else(|| Failure::null(arg))
}

/// An optional out-pointer: `None` for NULL.
///
/// # Safety
/// As [`out`].
pub(crate) unsafe fn opt_out<'a, T>(ptr: *mut T) -> Option<&'a mut MaybeUninit<T>> {
    // SAFETY: as in `out`.
    unsafe { ptr.cast::<MaybeUninit<T>>().as_mut() }
}
