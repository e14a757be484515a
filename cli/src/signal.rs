//! Clean shutdown: SIGINT/SIGTERM set a flag that long-running commands poll
//! between short waits; a second signal exits at once with status 130.
//! Also detects a closed output pipe while idle.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // Second signal: the user insists. `_exit` is async-signal-safe.
        // SAFETY: terminating the process is always allowed.
        unsafe { libc::_exit(130) };
    }
}

/// Install the SIGINT and SIGTERM handlers (idempotent).
pub fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler and an empty mask is
        // valid; the handler only touches an atomic and calls `_exit`. No
        // SA_RESTART, so blocking waits return early with EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Whether a stop was requested by a signal.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Whether standard output is a pipe whose reader has gone away, checked
/// without writing (`poll` reports `POLLERR` on such a pipe).
pub fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLERR | libc::POLLNVAL) != 0
}

/// Whether standard output is a terminal.
pub fn stdout_is_tty() -> bool {
    // SAFETY: isatty on a constant descriptor.
    unsafe { libc::isatty(libc::STDOUT_FILENO) == 1 }
}

/// Whether standard error is a terminal.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty on a constant descriptor.
    unsafe { libc::isatty(libc::STDERR_FILENO) == 1 }
}
