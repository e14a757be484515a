//! Surviving a segment that another process truncates under us.
//!
//! POSIX shared memory cannot be sealed against `ftruncate`, and touching a
//! mapped page past the new end of the object raises `SIGBUS`. shmbus installs
//! one `SIGBUS` handler (with `SA_SIGINFO`) the first time a segment is
//! mapped. Every mapping is registered in a fixed, lock-free table. When a
//! fault's address falls inside a registered mapping, the handler marks that
//! mapping as truncated and maps a private zero page over the faulting page,
//! so the interrupted load or store completes harmlessly (readers then see
//! zeros, which never validate as a frame). The bus checks the flag after
//! every operation and reports [`crate::Error::Incompatible`] ("truncated").
//! Faults outside shmbus mappings go to the previously installed handler, or
//! get the default action.
//!
//! The handler only uses atomics and the `mmap` system call. If more than
//! [`MAX_MAPPINGS`] segments are mapped at once, the extra ones are not
//! protected (documented in the README).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Once;

/// How many mappings can be protected at once.
pub const MAX_MAPPINGS: usize = 256;

struct Entry {
    start: AtomicUsize,
    len: AtomicUsize,
    truncated: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Entry = Entry {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
};
static TABLE: [Entry; MAX_MAPPINGS] = [EMPTY; MAX_MAPPINGS];
static INSTALL: Once = Once::new();
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();
static HAVE_PREVIOUS: AtomicBool = AtomicBool::new(false);

/// A registered mapping; unregistered on drop (before the unmap).
pub(crate) struct Registration(Option<usize>);

impl Registration {
    /// A registration that protects nothing.
    pub(crate) fn none() -> Registration {
        Registration(None)
    }
    /// The flag that says whether a fault inside this mapping was caught,
    /// for the bus to keep at hand and load on every operation. It stands
    /// for this mapping only while the registration lives (after that its
    /// table entry may protect another mapping).
    pub(crate) fn flag(&self) -> &'static AtomicBool {
        static NEVER: AtomicBool = AtomicBool::new(false);
        self.0.map_or(&NEVER, |i| &TABLE[i].truncated)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            TABLE[i].len.store(0, Release);
            TABLE[i].start.store(0, Release);
            TABLE[i].truncated.store(false, Release);
        }
    }
}

/// Protect `start..start+len` (a live mapping).
pub(crate) fn register(start: *mut u8, len: usize) -> Registration {
    INSTALL.call_once(install);
    for (i, e) in TABLE.iter().enumerate() {
        if e.start.compare_exchange(0, start as usize, AcqRel, Relaxed).is_ok() {
            e.truncated.store(false, Release);
            e.len.store(len, Release);
            return Registration(Some(i));
        }
    }
    Registration(None)
}

fn install() {
    // SAFETY: we build a zeroed sigaction, fill handler and flags, and pass
    // valid pointers; PREVIOUS is written here once, before HAVE_PREVIOUS is
    // set, and only read by the handler after checking HAVE_PREVIOUS.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        let prev = std::ptr::addr_of_mut!(PREVIOUS).cast::<libc::sigaction>();
        if libc::sigaction(libc::SIGBUS, &sa, prev) == 0 {
            HAVE_PREVIOUS.store(true, Release);
        }
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for e in TABLE.iter() {
        let start = e.start.load(Acquire);
        let len = e.len.load(Acquire);
        if start != 0 && addr >= start && addr < start + len {
            e.truncated.store(true, Release);
            let page = addr & !(4095usize);
            // SAFETY: replaces one page of a mapping we own (registered and
            // not yet unmapped) with a private zero page; mmap is a plain
            // system call, safe to issue from a signal handler.
            let r = unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                return;
            }
            break;
        }
    }
    // Not ours (or we could not fix it): hand over to the previous handler.
    // SAFETY: PREVIOUS was fully written before HAVE_PREVIOUS was set.
    unsafe {
        if HAVE_PREVIOUS.load(Acquire) {
            let prev = &*std::ptr::addr_of!(PREVIOUS).cast::<libc::sigaction>();
            let h = prev.sa_sigaction;
            if h != libc::SIG_DFL && h != libc::SIG_IGN {
                if prev.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = std::mem::transmute(h);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
                    f(sig);
                }
                return;
            }
        }
        // Default action: reset and return; the faulting instruction re-runs
        // and the process dies of SIGBUS as it would have without us.
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}
