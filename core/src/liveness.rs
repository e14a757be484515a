//! Is the process that owns a table entry still alive?
//!
//! A pid alone is not enough: pids are reused. Every entry stores the pid and
//! the process start time (field 22 of `/proc/PID/stat`, in clock ticks since
//! boot); an entry is alive only if a process with that pid exists *and*
//! started at that time.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::Once;

// The pid is cached (getpid is a system call, and publish records it in
// every frame); a pthread_atfork child handler refreshes it after fork() and
// bumps the fork generation so per-thread state of the parent (producer
// slots) is not reused by the child.
static PID: AtomicU32 = AtomicU32::new(0);
static START: AtomicU64 = AtomicU64::new(u64::MAX);
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static INIT: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Only async-signal-safe work here: getpid and atomics.
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() } as u32, Relaxed);
    START.store(u64::MAX, Relaxed);
    FORK_GENERATION.fetch_add(1, Relaxed);
}

/// Run the one-time setup if it has not run yet: one atomic load on every
/// call after the first (it sits on the publish path, through
/// `fork_generation`).
#[inline(always)]
fn init() {
    if !INIT.is_completed() {
        init_slow();
    }
}

#[cold]
#[inline(never)]
fn init_slow() {
    INIT.call_once(|| {
        PID.store(std::process::id(), Relaxed);
        // SAFETY: registers a handler that only touches atomics and getpid.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// Pid of the calling process (cached; no system call).
#[inline]
pub fn pid() -> u32 {
    init();
    PID.load(Relaxed)
}

/// Incremented in a child after every fork().
#[inline]
pub fn fork_generation() -> u64 {
    init();
    FORK_GENERATION.load(Relaxed)
}

/// `(pid, start time)` of the calling process.
pub fn current() -> (u32, u64) {
    let pid = pid();
    let mut start = START.load(Relaxed);
    if start == u64::MAX {
        start = start_time(pid).unwrap_or(0);
        START.store(start, Relaxed);
    }
    (pid, start)
}

/// Start time of `pid` in clock ticks since boot, if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and ')': skip past the last ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // rest starts with " S ppid ..." : field 3 is index 0 here; field 22 is index 19.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `(pid, start)` is still running.
pub fn is_alive(pid: u32, start: u64) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    match start_time(pid) {
        Some(s) => start == 0 || s == start,
        None => {
            // No /proc entry: ask the kernel directly (EPERM still means alive).
            // SAFETY: kill with signal 0 only checks for existence.
            let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
            rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let (pid, start) = current();
        assert!(start > 0);
        assert!(is_alive(pid, start));
        assert!(!is_alive(pid, start + 1), "same pid, other start time = other process");
        assert!(!is_alive(0, 0));
    }

    #[test]
    fn a_reaped_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_time(pid).unwrap_or(0);
        child.wait().unwrap();
        assert!(!is_alive(pid, start.max(1)));
    }
}
